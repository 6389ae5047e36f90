"""sgg_loss against hand-written cross-entropy and binary cross-entropy."""

from __future__ import annotations

import pytest
import torch

from scenellm.model.losses import sgg_loss


def _case(p: int = 5, n: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    outputs = {
        "attention_logits": torch.randn(p, 3, generator=gen, requires_grad=True),
        "spatial_logits": torch.randn(p, 6, generator=gen, requires_grad=True),
        "contacting_logits": torch.randn(p, 17, generator=gen, requires_grad=True),
        "object_logits": torch.randn(n, 37, generator=gen, requires_grad=True),
    }
    targets = {
        "attention": torch.randint(0, 3, (p,), generator=gen),
        "spatial": (torch.rand(p, 6, generator=gen) < 0.3).float(),
        "contacting": (torch.rand(p, 17, generator=gen) < 0.2).float(),
        "objects": torch.randint(1, 37, (n,), generator=gen),
    }
    return outputs, targets


def _ce(logits: torch.Tensor, target: torch.Tensor) -> float:
    log_p = logits.detach().double().log_softmax(dim=1)
    return float(-log_p[torch.arange(len(target)), target].mean())


def _bce(logits: torch.Tensor, target: torch.Tensor) -> float:
    p = torch.sigmoid(logits.detach().double())
    return float(-(target * p.log() + (1 - target) * (1 - p).log()).mean())


def test_parts_match_reference():
    outputs, targets = _case()
    total, parts = sgg_loss(outputs, targets)
    expected = {
        "attention": _ce(outputs["attention_logits"], targets["attention"]),
        "spatial": _bce(outputs["spatial_logits"], targets["spatial"]),
        "contacting": _bce(outputs["contacting_logits"], targets["contacting"]),
        "object": _ce(outputs["object_logits"], targets["objects"]),
    }
    assert set(parts) == {*expected, "total"}
    for name, value in expected.items():
        assert parts[name] == pytest.approx(value, rel=1e-5), name
    assert parts["total"] == pytest.approx(sum(expected.values()), rel=1e-5)
    assert isinstance(parts["total"], float)
    total.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in outputs.values())


def test_weights_and_missing_object_logits():
    outputs, targets = _case()
    outputs["object_logits"] = None
    weights = {"attention": 2.0, "spatial": 0.5, "contacting": 0.0}
    total, parts = sgg_loss(outputs, targets, weights)
    assert "object" not in parts
    expected = 2.0 * parts["attention"] + 0.5 * parts["spatial"]
    assert float(total.detach()) == pytest.approx(expected, rel=1e-6)


def test_no_pairs_gives_zero_relation_loss():
    outputs, targets = _case(p=0)
    total, parts = sgg_loss(outputs, targets)
    assert parts["attention"] == parts["spatial"] == parts["contacting"] == 0.0
    assert torch.isfinite(total)
    total.backward()


def test_bad_inputs_raise():
    outputs, targets = _case()
    with pytest.raises(ValueError, match="unknown loss weights"):
        sgg_loss(outputs, targets, {"relation": 1.0})
    del targets["objects"]
    with pytest.raises(KeyError, match="objects"):
        sgg_loss(outputs, targets)


def test_a_heads_auxiliary_loss_is_added_to_the_total_as_given():
    torch.manual_seed(0)
    outputs = {"attention_logits": torch.randn(3, 3), "spatial_logits": torch.randn(3, 6),
               "contacting_logits": torch.randn(3, 17), "aux_loss": torch.tensor(0.25)}
    targets = {"attention": torch.tensor([0, 1, 2]), "spatial": torch.zeros(3, 6),
               "contacting": torch.zeros(3, 17)}
    total, parts = sgg_loss(outputs, targets)
    without, _ = sgg_loss({k: v for k, v in outputs.items() if k != "aux_loss"}, targets)
    assert parts["aux"] == pytest.approx(0.25)
    assert float(total) == pytest.approx(float(without) + 0.25, abs=1e-6)


def _weighted_bce(logits: torch.Tensor, target: torch.Tensor, pos: torch.Tensor) -> float:
    p = torch.sigmoid(logits.detach().double())
    return float(-(pos.double() * target * p.log() + (1 - target) * (1 - p).log()).mean())


def test_balanced_parts_weigh_each_predicates_positives_by_its_rarity():
    from scenellm.model.losses import positive_weights

    prior = [0.5, 0.3, 0.2] + [0.5, 0.25, 0.1, 0.05, 0.2, 0.4] + [0.01 * (k + 1) for k in range(17)]
    weights = positive_weights(prior, 0.5)
    for kind, start, width in (("spatial", 3, 6), ("contacting", 9, 17)):
        expected = [((1 - q) / q) ** 0.5 for q in prior[start:start + width]]
        torch.testing.assert_close(weights[kind].double(), torch.tensor(expected,
                                   dtype=torch.float64), rtol=1e-6, atol=0)
    assert weights["spatial"][0] == 1.0  # a predicate on half the pairs is not reweighed
    outputs, targets = _case()
    _, parts = sgg_loss(outputs, targets, pos_weight=weights)
    for kind in ("spatial", "contacting"):
        assert parts[kind] == pytest.approx(
            _weighted_bce(outputs[f"{kind}_logits"], targets[kind], weights[kind]), rel=1e-6)
    _, plain = sgg_loss(outputs, targets)
    assert parts["contacting"] > plain["contacting"]  # rare positives now weigh more
    assert parts["attention"] == plain["attention"]
    zero = positive_weights(prior, 0.0)
    assert all(bool((w == 1).all()) for w in zero.values())
