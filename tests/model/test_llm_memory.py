"""The LLM memory switches on CPU: gradient checkpointing gives the gradients of a plain
backward and really recomputes layers; quantised loading asks for nf4 / int8 and peft's
k-bit preparation, and is refused without its backend or with llm.mode=full; saved models
record both settings and older ones load as none / off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_llm import TOKEN_DIM, _inputs, _save_tokenizer
from test_scenellm import build, save_vqvae, tiny_bert, video_batch  # noqa: F401 - fixture

from scenellm.config.load import load_params
from scenellm.errors import UserError
from scenellm.model.llm import SceneLanguageModel, quantization_problem

PARAMS = Path(__file__).resolve().parents[2] / "params"
GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-7  # recomputation repeats the same float32 ops on CPU


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny BERT without dropout: two backward passes see the same function."""
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("bert_no_dropout")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=16,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
              ).save_pretrained(path)
    _save_tokenizer(path)
    return path


def _build(path: Path, mode: str, checkpointing: bool) -> SceneLanguageModel:
    torch.manual_seed(0)
    model = SceneLanguageModel(path, TOKEN_DIM, mode=mode, lora_dropout=0.0,
                               gradient_checkpointing=checkpointing)
    return model.train()  # transformers checkpoints only in training mode


def _base(model: SceneLanguageModel):
    return model.llm.get_base_model() if model.mode == "lora" else model.llm


def _gradients(model: SceneLanguageModel) -> dict[str, torch.Tensor]:
    model(*_inputs()).pow(2).mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.requires_grad and p.grad is not None}  # BERT's pooler gets none


@pytest.mark.parametrize("mode", ["lora", "frozen", "full"])
def test_gradient_checkpointing_leaves_the_gradients_unchanged(bert_dir, mode):
    plain = _gradients(_build(bert_dir, mode, checkpointing=False))
    checkpointed = _gradients(_build(bert_dir, mode, checkpointing=True))
    assert plain.keys() == checkpointed.keys()
    inside = [n for n in plain if not n.startswith("projection.")]
    assert bool(inside) == (mode != "frozen")
    assert any(plain[n].abs().max() > 0 for n in inside or plain)  # not a comparison of zeros
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=GRAD_RTOL, atol=GRAD_ATOL,
                                   msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_gradient_checkpointing_recomputes_each_layer_in_backward(bert_dir, mode):
    """A hook inside layer 0 fires once in forward, and again in backward only when the
    layer's activations were dropped and recomputed."""
    tokens, mask = _inputs()
    for checkpointing, runs in ((False, 1), (True, 2)):
        model = _build(bert_dir, mode, checkpointing)
        base = _base(model)
        assert base.is_activation_checkpointing is checkpointing
        calls = []
        base.encoder.layer[0].attention.register_forward_hook(
            lambda *_, calls=calls: calls.append(1))
        hidden = model(tokens, mask)
        assert len(calls) == 1
        hidden.pow(2).mean().backward()
        assert len(calls) == runs, f"gradient_checkpointing={checkpointing}"


def test_quantisation_without_cuda_is_refused_in_one_line_naming_the_key():
    problem = quantization_problem("4bit", torch.device("cpu"))
    assert problem.startswith("llm.quantization: 4bit loading needs a CUDA device")
    assert "\n" not in problem and "llm.quantization=none" in problem
    assert quantization_problem("none", torch.device("cpu")) is None


@pytest.mark.skipif(quantization_problem("8bit", torch.device("cuda")) is None,
                    reason="CUDA and bitsandbytes are here: the loader would quantise")
@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_the_loader_refuses_quantisation_without_its_backend(bert_dir, quantization):
    with pytest.raises(UserError, match=rf"^llm.quantization: {quantization} loading needs "):
        SceneLanguageModel(bert_dir, TOKEN_DIM, mode="lora", quantization=quantization)


def test_quantised_full_fine_tuning_is_refused_by_the_model(bert_dir):
    with pytest.raises(ValueError, match="llm.quantization=4bit needs llm.mode lora or frozen"):
        SceneLanguageModel(bert_dir, TOKEN_DIM, mode="full", quantization="4bit")


def test_4bit_lora_loads_nf4_and_prepares_the_base_before_adapters(bert_dir, monkeypatch):
    """The CUDA path with bitsandbytes' part faked: what the loader asks transformers and
    peft for, in which order."""
    import peft
    from transformers import AutoModel

    import scenellm.model.llm as llm_module

    asked, prepared = {}, []
    load = AutoModel.from_pretrained

    def fake_load(path, **kwargs):
        asked.update(kwargs)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("quantization_config", "device_map")}
        return load(path, **kwargs)

    def fake_prepare(model, **kwargs):
        prepared.append(any("lora_" in n for n, _ in model.named_parameters()))
        return model

    monkeypatch.setattr(llm_module, "quantization_problem", lambda *_: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(AutoModel, "from_pretrained", fake_load)
    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", fake_prepare)
    model = SceneLanguageModel(bert_dir, TOKEN_DIM, mode="lora", quantization="4bit")
    config = asked["quantization_config"]
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert asked["device_map"] == {"": 0}
    assert prepared == [False]  # once, on the base without adapters
    assert model.quantization == "4bit"
    asked.clear()
    SceneLanguageModel(bert_dir, TOKEN_DIM, mode="frozen", quantization="8bit")
    assert asked["quantization_config"].load_in_8bit and prepared == [False]


def test_preflight_refuses_quantisation_on_this_machine_in_one_line():
    from scenellm.stages.preflight import preflight

    params = load_params(PARAMS, ["llm.quantization=4bit"])
    if quantization_problem("4bit", torch.device("cuda")) is None:
        pytest.skip("CUDA and bitsandbytes are here")
    with pytest.raises(UserError) as info:
        preflight(params, "finetune")
    assert str(info.value).startswith("llm.quantization: 4bit loading needs ")
    assert "\n" not in str(info.value)
    preflight(load_params(PARAMS, ["llm.quantization=4bit", "llm.mode=none"]), "finetune")


def test_quantised_full_fine_tuning_is_refused_by_params_naming_both_keys():
    with pytest.raises(UserError) as info:
        load_params(PARAMS, ["llm.quantization=8bit", "llm.mode=full"])
    message = str(info.value)
    assert "\n" not in message and "llm.quantization" in message and "llm.mode" in message
    load_params(PARAMS, ["llm.quantization=8bit", "llm.mode=frozen"])


def test_saved_adapters_record_the_settings_and_older_markers_load(bert_dir, tmp_path):
    model = _build(bert_dir, "lora", checkpointing=True)
    model.save_adapters(tmp_path)
    marker = json.loads((tmp_path / "scene_llm.json").read_text())
    assert marker["quantization"] == "none" and marker["gradient_checkpointing"] is True
    for key in ("quantization", "gradient_checkpointing"):  # a marker written before them
        del marker[key]
    (tmp_path / "scene_llm.json").write_text(json.dumps(marker))
    _build(bert_dir, "lora", checkpointing=False).load_adapters(tmp_path)
    (tmp_path / "scene_llm.json").write_text(json.dumps({**marker, "quantization": "4bit"}))
    with pytest.raises(ValueError, match="quantization '4bit'; this model's is 'none'"):
        _build(bert_dir, "lora", checkpointing=False).load_adapters(tmp_path)


def test_saved_model_rebuilds_its_checkpointing_and_older_configs_load(tiny_bert,  # noqa: F811
                                                                        tmp_path):
    from scenellm.model.checkpoint import load_finetuned, save_finetuned

    model = build(tiny_bert, llm_gradient_checkpointing=True).eval()
    save_finetuned(model, tmp_path / "model", save_vqvae(model, tmp_path / "vqvae"))
    config_path = tmp_path / "model" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["llm_gradient_checkpointing"] is True and config["llm_quantization"] == "none"
    loaded = load_finetuned(tmp_path / "model")
    assert _base(loaded.llm).is_activation_checkpointing
    with torch.no_grad():
        expected = model(video_batch())["contacting_logits"]
        torch.testing.assert_close(loaded(video_batch())["contacting_logits"], expected,
                                   rtol=0, atol=1e-6)
    older = {k: v for k, v in config.items()
             if k not in ("llm_quantization", "llm_gradient_checkpointing")}
    config_path.write_text(json.dumps(older))
    assert not _base(load_finetuned(tmp_path / "model").llm).is_activation_checkpointing
    config_path.write_text(json.dumps({**older, "llm_quantization": "4bit"}))
    with pytest.raises(UserError, match="4bit quantised base, which loads only on a CUDA"):
        load_finetuned(tmp_path / "model", device="cpu")
