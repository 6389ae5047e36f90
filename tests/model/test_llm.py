"""SceneLanguageModel on tiny random BERT / LLaMA / T5 directories and the packaged MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from scenellm.model.llm import SceneLanguageModel, default_llm_path
from scenellm.model.lora import LORA_TARGETS, default_target_modules

TOKEN_DIM = 12
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "scene", ":", "a", "person", "holds", "cup"]


def _save_tokenizer(directory: Path) -> None:
    """A WordLevel tokenizer that wraps text as [CLS] ... [SEP], built offline."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )
    fast.save_pretrained(directory)


def _tiny(kind: str):
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel, T5Config, T5Model

    if kind == "bert":
        config = BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=16,
        )  # fmt: skip
        return BertModel(config)
    if kind == "llama":
        config = LlamaConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=64, max_position_embeddings=16,
        )  # fmt: skip
        return LlamaModel(config)
    config = T5Config(
        vocab_size=100,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
    )
    return T5Model(config)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llms")
    dirs = {}
    for kind in ("bert", "llama", "t5"):
        torch.manual_seed(0)
        dirs[kind] = root / kind
        _tiny(kind).save_pretrained(dirs[kind])
        if kind != "t5":
            _save_tokenizer(dirs[kind])
    return dirs


def _build(path: Path, mode: str = "lora", seed: int = 0, **kwargs) -> SceneLanguageModel:
    torch.manual_seed(seed)
    return SceneLanguageModel(path, TOKEN_DIM, mode=mode, **kwargs)


def _inputs(batch: int = 2, length: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    tokens = torch.randn(batch, length, TOKEN_DIM, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[-1, length - 2 :] = False
    return tokens, mask


def _trainable(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("kind", ["bert", "llama"])
@pytest.mark.parametrize("mode", ["lora", "full", "frozen", "none"])
def test_modes_shapes_and_trainable_sets(model_dirs, kind, mode):
    model = _build(model_dirs[kind], mode)
    tokens, mask = _inputs()
    hidden = model(tokens, mask)
    width = TOKEN_DIM if mode == "none" else 32
    assert model.hidden_size == width
    assert hidden.shape == (2, 5, width)
    assert torch.isfinite(hidden).all()
    assert (hidden[~mask] == 0).all() and (hidden[mask] != 0).any(dim=-1).all()
    trainable = _trainable(model)
    everything = {n for n, _ in model.named_parameters()}
    if mode == "lora":
        assert trainable and all("lora_" in n or n.startswith("projection.") for n in trainable)
        assert any("lora_A" in n for n in trainable) and "projection.weight" in trainable
    elif mode == "full":
        assert trainable == everything
    elif mode == "frozen":
        assert trainable == {"projection.weight", "projection.bias"}
    else:
        assert model.llm is None and trainable == everything == {"norm.weight", "norm.bias"}
    count = model.trainable_parameters()
    assert count.trainable == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert count.total == sum(p.numel() for p in model.parameters())


def _step(model: SceneLanguageModel) -> None:
    tokens, mask = _inputs()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(tokens, mask).pow(2).mean().backward()
    opt.step()
    opt.zero_grad()


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_lora_step_changes_adapters_only(model_dirs, kind):
    model = _build(model_dirs[kind], "lora")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _step(model)
    after = dict(model.named_parameters())
    base = [n for n in before if "lora_" not in n and not n.startswith("projection.")]
    assert base and all(torch.equal(before[n], after[n]) for n in base)
    lora_b = [n for n in before if "lora_B" in n]  # B starts at 0 so only B moves on step one
    assert lora_b and all(not torch.equal(before[n], after[n]) for n in lora_b)
    assert not torch.equal(before["projection.weight"], after["projection.weight"])


def test_full_step_changes_llm_weights(model_dirs):
    model = _build(model_dirs["llama"], "full")
    name = "llm.layers.0.self_attn.q_proj.weight"
    before = dict(model.named_parameters())[name].detach().clone()
    _step(model)
    assert not torch.equal(before, dict(model.named_parameters())[name])


@pytest.mark.parametrize(("kind", "mode"), [("bert", "lora"), ("llama", "lora"), ("bert", "full")])
def test_save_load_adapters_roundtrip(model_dirs, tmp_path, kind, mode):
    model = _build(model_dirs[kind], mode)
    _step(model)
    model.save_adapters(tmp_path)
    if mode == "lora":
        assert (tmp_path / "adapter_config.json").is_file()
        assert (tmp_path / "adapter_model.safetensors").is_file()
        # the same adapters give the same bytes in any checkout: no environment path
        config = json.loads((tmp_path / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == Path(model_dirs[kind]).name
        for written in tmp_path.rglob("*"):
            if written.is_file():
                assert str(Path(model_dirs[kind]).parent).encode() not in written.read_bytes()
    fresh = _build(model_dirs[kind], mode, seed=1)
    fresh.projection.load_state_dict(model.projection.state_dict())  # saved by the caller
    tokens, mask = _inputs()
    model.eval(), fresh.eval()
    # one step moves the zero-initialised LoRA B only slightly (~1e-4 here): the adapters
    # must change the output by ten times the tolerance the loaded model is held to
    assert (fresh(tokens, mask) - model(tokens, mask)).abs().max() > 1e-5
    fresh.load_adapters(tmp_path)
    torch.testing.assert_close(fresh(tokens, mask), model(tokens, mask), atol=1e-6, rtol=0)
    whole = _build(model_dirs[kind], mode, seed=2).eval()
    whole.load_state_dict(model.state_dict())
    torch.testing.assert_close(whole(tokens, mask), model(tokens, mask), atol=1e-6, rtol=0)


def test_load_adapters_rejects_other_mode_and_rank(model_dirs, tmp_path):
    _build(model_dirs["bert"], "lora").save_adapters(tmp_path / "lora")
    assert json.loads((tmp_path / "lora" / "scene_llm.json").read_text())["mode"] == "lora"
    with pytest.raises(ValueError, match="saved in mode 'lora'"):
        _build(model_dirs["bert"], "full").load_adapters(tmp_path / "lora")
    with pytest.raises(ValueError, match="r=8"):
        _build(model_dirs["bert"], "lora", lora_rank=4).load_adapters(tmp_path / "lora")


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_padding_does_not_change_real_positions(model_dirs, kind):
    model = _build(model_dirs[kind], "lora").eval()
    tokens, mask = _inputs()  # second clip: 3 real tokens, 2 padded
    noise = torch.randn(2, TOKEN_DIM, generator=torch.Generator().manual_seed(3))
    padded = tokens.clone()
    padded[1, 3:] = noise * 50  # garbage in padding must not leak
    batch = model(padded, mask)
    single = model(tokens[1:, :3], torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(batch[1, :3], single[0], atol=1e-5, rtol=1e-5)


def test_prompt_is_prepended_and_stripped(model_dirs):
    """Frozen BERT with prompt equals the plain backbone on [E(prompt ids); W s + b]."""
    from transformers import AutoModel, AutoTokenizer

    path = model_dirs["bert"]
    model = _build(path, "frozen").eval()
    ids = AutoTokenizer.from_pretrained(path)("Scene:")["input_ids"]
    assert ids == [2, 4, 5, 3] and model.prompt_length == 4
    backbone = AutoModel.from_pretrained(path).eval()
    tokens, mask = _inputs()
    with torch.no_grad():
        prompt = backbone.embeddings.word_embeddings(torch.tensor(ids)).expand(2, 4, 32)
        x = torch.cat([prompt, model.projection(tokens)], dim=1)
        attention = torch.cat([torch.ones(2, 4, dtype=torch.long), mask.long()], dim=1)
        want = backbone(inputs_embeds=x, attention_mask=attention).last_hidden_state[:, 4:]
        got = model(tokens, mask)
    torch.testing.assert_close(got[mask], want[mask], atol=1e-6, rtol=1e-6)


def test_too_many_tokens_raise(model_dirs):
    model = _build(model_dirs["llama"], "frozen")  # 16 positions, prompt [CLS] scene : [SEP]
    model(*_inputs(1, 12))
    with pytest.raises(ValueError, match="at most 12 frames"):
        model(*_inputs(1, 13))
    with pytest.raises(ValueError, match="at most 4 frames"):
        _build(model_dirs["bert"], "frozen", max_positions=8)(*_inputs(1, 5))


def test_t5_encoder_and_bfloat16(model_dirs):
    t5 = _build(model_dirs["t5"], "lora", prompt=None)
    assert type(t5.llm.get_base_model()).__name__ == "T5EncoderModel"
    assert t5.llm.peft_config["default"].target_modules == {"q", "v"}
    assert t5(*_inputs()).shape == (2, 5, 32)
    bf16 = _build(model_dirs["llama"], "lora", dtype=torch.bfloat16)
    hidden = bf16(*_inputs())
    assert hidden.dtype == torch.float32 and torch.isfinite(hidden).all()
    assert bf16.llm.get_input_embeddings().weight.dtype == torch.bfloat16


def test_default_targets_per_architecture():
    from transformers import GPT2Config, GPT2Model

    gpt2 = GPT2Model(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=8))
    assert default_target_modules(gpt2, "gpt2") == LORA_TARGETS["gpt2"] == ["c_attn"]
    assert LORA_TARGETS["bert"] == ["query", "value"]
    assert LORA_TARGETS["llama"] == LORA_TARGETS["qwen2"] == ["q_proj", "v_proj"]

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.v_proj, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

    assert default_target_modules(Attention(), "mystery") == ["q_proj", "v_proj"]
    mlp = nn.Sequential()
    mlp.add_module("fc1", nn.Linear(4, 8))
    mlp.add_module("fc2", nn.Linear(8, 4))
    with pytest.raises(ValueError, match=r"model_type 'mystery'.*\['fc1', 'fc2'\]"):
        default_target_modules(mlp, "mystery")


def test_lora_uses_per_model_type_defaults_and_checks_explicit_targets(model_dirs):
    bert = _build(model_dirs["bert"], "lora")
    llama = _build(
        model_dirs["llama"], "lora", target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    assert bert.llm.peft_config["default"].target_modules == {"query", "value"}
    assert llama.llm.peft_config["default"].target_modules == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
    }
    with pytest.raises(ValueError, match=r"\['c_attn'\] match no Linear layer.*'query'"):
        _build(model_dirs["bert"], "lora", target_modules=["c_attn"])


def test_packaged_minilm_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = default_llm_path()
    assert json.loads((path / "config.json").read_text())["model_type"] == "bert"
    model = _build(None, "lora")
    assert model.hidden_size == 384 and model.prompt_length == 4  # [CLS] scene : [SEP]
    hidden = model(*_inputs(2, 5))
    assert hidden.shape == (2, 5, 384) and torch.isfinite(hidden).all()
    count = model.trainable_parameters()
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert lora == 6 * 2 * 2 * 8 * 384  # layers x (query, value) x (A, B) x r x 384
    assert count.trainable == lora + TOKEN_DIM * 384 + 384 and count.fraction < 0.05
