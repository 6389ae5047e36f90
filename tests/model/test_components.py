"""Component slots: the registries agree with the params schema, every component trains a
step through SceneLLM and reloads identically, and weights saved before the slots load."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from test_scenellm import FEAT, build, save_vqvae, tiny_bert, video_batch  # noqa: F401 - fixture

from scenellm.config.schema import ModelParams
from scenellm.model.checkpoint import load_finetuned, save_finetuned
from scenellm.model.components.fusion import FUSIONS
from scenellm.model.components.heads import HEADS
from scenellm.model.components.registry import collect_diagnostics
from scenellm.model.components.spatial import SPATIAL
from scenellm.model.losses import sgg_loss
from scenellm.model.predictor import SGGPredictor

SLOTS = {"spatial": SPATIAL, "head": HEADS, "fusion": FUSIONS}
COMPONENTS = [("spatial", "rgt"), ("spatial", "sge"), ("head", "moe"), ("fusion", "adaptive")]


@pytest.mark.parametrize("slot", SLOTS)
def test_params_schema_lists_exactly_the_registered_components(slot):
    annotation = ModelParams.model_fields[slot].annotation
    assert set(get_args(annotation)) == set(SLOTS[slot].names())
    assert ModelParams.model_fields[slot].default == SLOTS[slot].names()[0]  # today's module


@pytest.mark.parametrize("slot", SLOTS)
def test_every_config_field_carries_help_text(slot):
    for name in SLOTS[slot].names():
        assert all(SLOTS[slot].help(name).values()), f"{slot}={name} has a field without help"


def test_unknown_component_or_option_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match=r"model.head='tree' is no registered component"):
        HEADS.config("tree")
    with pytest.raises(ValueError, match=r"model.head_options: \['experts'\]"):
        HEADS.config("moe", {"experts": 3})
    assert HEADS.config("moe", {"num_experts": 3}).num_experts == 3


@pytest.mark.parametrize(("slot", "name"), COMPONENTS, ids=lambda c: str(c))
def test_component_trains_a_step_through_scenellm(tiny_bert, slot, name):  # noqa: F811
    model = build(tiny_bert, **{slot: name})
    part = {"spatial": model.sia, "head": model.predictor.head,
            "fusion": model.predictor.fusion}[slot]
    before = {n: q.detach().clone() for n, q in part.named_parameters()}
    optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-2)
    batch = video_batch()
    loss, parts = sgg_loss(model(batch), batch.targets())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert ("aux" in parts) == (name == "moe")
    moved = [n for n, q in part.named_parameters() if not torch.equal(q, before[n])]
    assert len(moved) > len(before) / 2, f"{name}: only {moved} trained"
    if name in ("moe", "adaptive"):
        assert collect_diagnostics(model)


def test_sge_reads_the_llm_prompt(tiny_bert):  # noqa: F811
    model = build(tiny_bert, spatial="sge").eval()
    text = model.llm.prompt_embedding()
    assert text is None  # the tiny LLM has no tokenizer, so no prompt: the learned text
    model.llm.prompt_ids = torch.tensor([1, 2, 3])
    text = model.llm.prompt_embedding()
    assert text.shape == (3, model.llm.hidden_size)
    with torch.no_grad():
        with_prompt = model(video_batch())["attention_logits"]
        model.llm.prompt_ids = torch.tensor([4, 5, 6])
        other_prompt = model(video_batch())["attention_logits"]
    assert not torch.allclose(with_prompt, other_prompt)


@pytest.mark.parametrize(("slot", "name"), COMPONENTS, ids=lambda c: str(c))
def test_component_model_reloads_identically(tiny_bert, tmp_path, slot, name):  # noqa: F811
    model = build(tiny_bert, **{slot: name}).eval()
    vq_dir = save_vqvae(model, tmp_path / "vqvae")
    with torch.no_grad():
        expected = model(video_batch())
    save_finetuned(model, tmp_path / "model", vq_dir)
    with torch.no_grad():
        got = load_finetuned(tmp_path / "model")(video_batch())
    for key in ("attention_logits", "spatial_logits", "contacting_logits"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)


def test_weights_saved_before_the_slots_load_into_them():
    torch.manual_seed(0)
    predictor = SGGPredictor(obj_dim=8, union_dim=8, context_dim=8, d_model=8, num_heads=2,
                             learn_gate=True)
    legacy = {k.replace("head.", "", 1) if k.startswith("head.") else
              k.replace("fusion.", "", 1): v for k, v in predictor.state_dict().items()}
    assert "attention_head.weight" in legacy and "gate.weight" in legacy
    fresh = SGGPredictor(obj_dim=8, union_dim=8, context_dim=8, d_model=8, num_heads=2,
                         learn_gate=True)
    fresh.load_state_dict(legacy)
    for key, value in predictor.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_preflight_names_an_option_the_chosen_component_does_not_have():
    from pathlib import Path

    from scenellm.config.load import load_params
    from scenellm.errors import UserError
    from scenellm.stages.preflight import check_components

    params_dir = Path(__file__).resolve().parents[2] / "params"
    check_components(load_params(params_dir, ["model.head=moe", "model.head_options.top_k=1"]))
    with pytest.raises(UserError, match=r"model.head_options: \['topk'\]"):
        check_components(load_params(params_dir, ["model.head=moe",
                                                  "model.head_options.topk=1"]))
