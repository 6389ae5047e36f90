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


def save_vqvae(model: SceneLLM, vq_dir):
    """The model's VQ-VAE as the vqvae stage writes it (weights, config, normaliser)."""
    vq_dir.mkdir()
    save_file({k: v.contiguous() for k, v in model.vqvae.state_dict().items()},
              vq_dir / "model.safetensors")
    (vq_dir / "config.json").write_text(json.dumps(model.vqvae.config()))
    save_file({"mean": torch.zeros(FEAT), "std": torch.ones(FEAT)},
              vq_dir / "normalizer.safetensors")
    return vq_dir


def test_saved_model_reloads_identically(tiny_bert, tmp_path):
    model = build(tiny_bert).eval()
    vq_dir = save_vqvae(model, tmp_path / "vqvae")
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


def _pair_delta(model, batch, other, pair: int) -> float:
    with torch.no_grad():
        a, b = model(batch), model(other)
    return float((a["contacting_logits"][pair] - b["contacting_logits"][pair]).abs().max())


@pytest.mark.parametrize("language", ["frames", "objects"])
def test_frame_context_lets_no_information_cross_frames(tiny_bert, language):
    """model.context=frame: changing frame 2's objects leaves frame 0's pairs exactly as
    they were, through VQ, SIA, OT, the LLM and the decoder; context=video lets it through."""
    batch = video_batch()
    other = video_batch()
    other.obj_feats = other.obj_feats.clone()
    other.obj_feats[other.frame_of_obj == 2] += 3.0  # frame 2 of video A only
    per_frame = build(tiny_bert, context="frame", language=language).eval()
    per_video = build(tiny_bert, context="video", language=language).eval()
    assert _pair_delta(per_frame, batch, other, 0) < 1e-6
    assert _pair_delta(per_video, batch, other, 0) > 1e-4


def test_per_frame_view_keeps_objects_and_pairs_and_makes_one_video_per_frame():
    batch = video_batch()
    view = batch.per_frame()
    assert view.num_videos == batch.num_frames_total == 5
    assert torch.equal(view.video_of_obj, batch.frame_of_obj)
    assert torch.equal(view.video_of_pair, batch.frame_of_pair)
    assert view.frame_pos.tolist() == [0] * 5 and view.frame_mask.all()
    # positions restart in every frame: frames hold 3, 2, 3, 2, 3 objects
    assert view.obj_pos.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 0, 1, 0, 1, 2]
    assert torch.equal(view.pair_idx, batch.pair_idx)


def test_objects_language_gives_pairs_their_objects_states(tiny_bert):
    """With the LLM reading objects, a pair's logits follow its own object's word: the
    class embedding of the object changes the pair even with the decoder's gate closed."""
    model = build(tiny_bert, language="objects", gate_alpha=1.0).eval()
    assert model.predictor.pair_state_proj is not None
    assert build(tiny_bert, language="frames").predictor.pair_state_proj is None
    batch = video_batch()
    other = video_batch()
    other.labels = other.labels.clone()
    other.labels[batch.pair_idx[0, 1]] = 30  # another class for pair 0's object
    other.is_person = other.labels == 1
    assert _pair_delta(model, batch, other, 0) > 1e-4


def test_tokens_continuous_never_runs_the_vq_encoder(tiny_bert, monkeypatch):
    model = build(tiny_bert, tokens="continuous", temporal="ot", ot_source="frames")

    def fail(*_):
        raise AssertionError("the VQ encoder ran")

    monkeypatch.setattr(model.vqvae, "encode", fail)
    out = model(video_batch())
    assert torch.isfinite(out["contacting_logits"]).all()


@pytest.mark.parametrize("probe", ["shuffle_frames", "ot_off", "swap_states"])
def test_probes_perturb_the_temporal_path_only_where_it_exists(tiny_bert, probe):
    batch = video_batch()
    video = build(tiny_bert).eval()
    frame = build(tiny_bert, context="frame").eval()
    with torch.no_grad():
        base, probed = video(batch), video(batch, probe=probe)
        assert (base["contacting_logits"] - probed["contacting_logits"]).abs().max() > 1e-5
        if probe == "shuffle_frames":  # one-frame videos have no order to shuffle
            torch.testing.assert_close(frame(batch, probe=probe)["contacting_logits"],
                                       frame(batch)["contacting_logits"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="probe"):
        video(batch, probe="nonsense")


def test_ot_over_codes_remains_available(tiny_bert):
    model = build(tiny_bert, ot_source="codes")
    out = model(video_batch())
    sgg_loss(out, video_batch().targets())[0].backward()
    assert model.ot.anchors.grad.abs().sum() > 0
    assert model.diagnostics["ot_unconverged"] == 0.0
