"""SceneLLM assembly: every ablation switch runs forward and backward, trains what it
should, and a saved model reloads to identical outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from scenellm.model.batch import VideoBatch
from scenellm.model.checkpoint import load_finetuned, save_finetuned
from scenellm.model.losses import sgg_loss
from scenellm.model.scenellm import SceneLLM, SceneLLMConfig
from scenellm.model.vqvae import VQVAE

FEAT = 24


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(path)
    return path


def video_batch(seed: int = 0) -> VideoBatch:
    """2 videos (3 and 2 frames), a person and 1–2 objects per frame."""
    g = torch.Generator().manual_seed(seed)
    frames = [(0, 2), (0, 1), (0, 2), (1, 1), (1, 2)]  # (video, objects in the frame)
    objs, video_of_obj, frame_of_obj, obj_pos, pairs, frame_of_pair = [], [], [], [], [], []
    counts = [0, 0]
    for f, (v, n) in enumerate(frames):
        person = len(objs)
        for j in range(n + 1):
            objs.append(1 if j == 0 else 2 + (f + j) % 5)
            video_of_obj.append(v)
            frame_of_obj.append(f)
            obj_pos.append(counts[v])
            counts[v] += 1
            if j:
                pairs.append((person, len(objs) - 1))
                frame_of_pair.append(f)
    n, p = len(objs), len(pairs)
    xy = torch.rand(n, 2, generator=g) * 0.5
    boxes_norm = torch.cat([xy, xy + 0.1 + torch.rand(n, 2, generator=g) * 0.4], 1)
    labels = torch.tensor(objs)
    pair_idx = torch.tensor(pairs)
    return VideoBatch(
        video_ids=["A.mp4", "B.mp4"], obj_feats=torch.randn(n, FEAT, generator=g),
        boxes=boxes_norm * 100, boxes_norm=boxes_norm, labels=labels,
        is_person=labels == 1, frame_of_obj=torch.tensor(frame_of_obj),
        video_of_obj=torch.tensor(video_of_obj), obj_pos=torch.tensor(obj_pos),
        video_of_frame=torch.tensor([v for v, _ in frames]),
        frame_pos=torch.tensor([0, 1, 2, 0, 1]),
        frame_mask=torch.tensor([[True, True, True], [True, True, False]]),
        pair_idx=pair_idx, frame_of_pair=torch.tensor(frame_of_pair),
        video_of_pair=torch.tensor([frames[f][0] for f in frame_of_pair]),
        union_feats=torch.randn(p, FEAT, generator=g),
        attention=torch.randint(0, 3, (p,), generator=g),
        spatial=(torch.rand(p, 6, generator=g) > 0.7).float(),
        contacting=(torch.rand(p, 17, generator=g) > 0.8).float())


def build(tiny_bert, **switches) -> SceneLLM:
    torch.manual_seed(0)
    vq = VQVAE(in_dim=FEAT, code_dim=8, codebook_size=16, hidden_dim=16, kmeans_init=False)
    config = SceneLLMConfig(feature_dim=FEAT, d_model=16, num_scene_tokens=4,
                            llm_path=str(tiny_bert), llm_prompt=None, lora_rank=2, **switches)
    return SceneLLM(config, vq, torch.zeros(FEAT), torch.ones(FEAT))


CASES = [
    dict(tokens="vq", temporal="ot", llm_mode="lora"),
    dict(tokens="continuous", temporal="ot", llm_mode="lora"),
    dict(tokens="vq", temporal="mean", llm_mode="lora"),
    dict(tokens="vq", temporal="none", llm_mode="lora"),
    dict(tokens="vq", temporal="ot", llm_mode="full"),
    dict(tokens="vq", temporal="ot", llm_mode="frozen"),
    dict(tokens="vq", temporal="ot", llm_mode="none"),
]


@pytest.mark.parametrize("switches", CASES, ids=lambda c: "-".join(c.values()))
def test_switch_runs_and_trains_the_right_parts(tiny_bert, switches):
    model = build(tiny_bert, **switches)
    batch = video_batch()
    out = model(batch)
    assert out["attention_logits"].shape == (len(batch.pair_idx), 3)
    assert out["contacting_logits"].shape == (len(batch.pair_idx), 17)
    loss, _ = sgg_loss(out, batch.targets())
    loss.backward()
    assert (model.ot is None) == (switches["temporal"] != "ot")
    if model.ot is not None:
        assert model.ot.anchors.grad is not None and model.ot.anchors.grad.abs().sum() > 0
    assert all(q.grad is None for q in model.vqvae.parameters())  # frozen after phase (a)
    adapters = model.adapter_parameters()
    expected = {"lora": True, "full": True, "frozen": False, "none": False}
    assert bool(adapters) == expected[switches["llm_mode"]]
    if switches["llm_mode"] == "lora":
        assert all("lora_" in n for n, q in model.llm.llm.named_parameters() if q.requires_grad)


def test_temporal_switch_changes_what_a_frame_sees(tiny_bert):
    """With no temporal aggregation and no LLM, a pair's logits depend only on its own
    frame; with OT or mean aggregation, changing another frame's objects changes them."""
    batch = video_batch()
    other = video_batch()
    other.obj_feats = other.obj_feats.clone()
    other.obj_feats[other.frame_of_obj == 2] += 3.0  # frame 2 of video A only
    pair0 = 0  # a pair of frame 0

    def delta(**switches):
        model = build(tiny_bert, llm_mode="none", **switches).eval()
        with torch.no_grad():
            a, b = model(batch), model(other)
        return float((a["contacting_logits"][pair0] - b["contacting_logits"][pair0]).abs().max())

    assert delta(temporal="none", gate_alpha=1.0) < 1e-6
    assert delta(temporal="mean") > 1e-4


def test_saved_model_reloads_identically(tiny_bert, tmp_path):
    model = build(tiny_bert).eval()
    vq_dir = tmp_path / "vqvae"
    vq_dir.mkdir()
    save_file({k: v.contiguous() for k, v in model.vqvae.state_dict().items()},
              vq_dir / "model.safetensors")
    (vq_dir / "config.json").write_text(json.dumps(model.vqvae.config()))
    save_file({"mean": torch.zeros(FEAT), "std": torch.ones(FEAT)},
              vq_dir / "normalizer.safetensors")
    with torch.no_grad():
        for q in model.adapter_parameters():  # LoRA B starts at 0: make adapters matter
            q.add_(0.01)
        expected = model(video_batch())
    save_finetuned(model, tmp_path / "model", vq_dir)
    assert (tmp_path / "model" / "llm" / "adapter_model.safetensors").exists()
    loaded = load_finetuned(tmp_path / "model")
    with torch.no_grad():
        got = loaded(video_batch())
    for key in ("attention_logits", "spatial_logits", "contacting_logits", "object_logits"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)
