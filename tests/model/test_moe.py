"""MoE-VRD's sparsely gated experts: top-k routing, the load-balancing loss value, that only
the chosen experts run, and the utilisation report."""

from __future__ import annotations

import math

import pytest
import torch

from scenellm.model.components.heads.moe import (
    KIND_SIZES,
    MoEConfig,
    MoEHeads,
    load_balancing_loss,
    top_k_gates,
)


def test_top_k_gates_keep_the_k_largest_logits_softmaxed_among_themselves():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.0, -1.0, 5.0, 4.0]])
    gates, chosen = top_k_gates(logits, 2)
    e = math.exp
    expected = torch.tensor([[0.0, e(3) / (e(3) + e(2)), e(2) / (e(3) + e(2)), 0.0],
                             [0.0, 0.0, e(5) / (e(5) + e(4)), e(4) / (e(5) + e(4))]])
    torch.testing.assert_close(gates, expected)
    assert [sorted(r) for r in chosen.tolist()] == [[1, 2], [2, 3]]


def test_load_balancing_loss_matches_the_hand_computation():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0], [math.log(3.0), 0.0]])
    chosen = torch.tensor([[1], [0], [0]])
    # load f = (2/3, 1/3); importance p = mean of (1/4, 3/4), (1/2, 1/2), (3/4, 1/4) = (1/2, 1/2)
    expected = 2 * (2 / 3 * 1 / 2 + 1 / 3 * 1 / 2)
    assert float(load_balancing_loss(logits, chosen)) == pytest.approx(expected, abs=1e-6)


def test_load_balancing_loss_is_one_when_balanced_and_e_when_one_expert_takes_all():
    uniform = torch.zeros(4, 4)
    balanced = torch.tensor([[0], [1], [2], [3]])
    assert float(load_balancing_loss(uniform, balanced)) == pytest.approx(1.0)
    collapsed = torch.tensor([[50.0, 0.0, 0.0, 0.0]]).repeat(4, 1)
    assert float(load_balancing_loss(collapsed, torch.zeros(4, 1, dtype=torch.long))) == \
        pytest.approx(4.0, abs=1e-6)


def _moe(**kw) -> MoEHeads:
    torch.manual_seed(0)
    moe = MoEHeads(MoEConfig(num_experts=4, top_k=2, hidden_dim=8, **kw), d_model=6)
    with torch.no_grad():
        moe.router.weight.normal_()
    return moe.eval()


def test_output_is_the_gate_weighted_sum_of_the_chosen_experts_only():
    moe = _moe(aux_weight=0.5)
    x = torch.randn(5, 6)
    calls = [0] * 4
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(
            lambda m, i, o, e=e: calls.__setitem__(e, calls[e] + len(i[0])))
    out = moe(x)
    ran = list(calls)
    gates, chosen = top_k_gates(moe.router(x), 2)
    dense = sum(gates[:, e, None] * moe.experts[e](x) for e in range(4))  # (5, 26)
    got = torch.cat([out["attention_logits"], out["spatial_logits"],
                     out["contacting_logits"]], dim=-1)
    torch.testing.assert_close(got, dense)
    assert [o.shape[1] for o in (out["attention_logits"], out["spatial_logits"],
                                 out["contacting_logits"])] == list(KIND_SIZES)
    assert ran == [int((chosen == e).any(-1).sum()) for e in range(4)]
    assert sum(ran) == 5 * 2  # each pair runs exactly k experts
    expected_aux = 0.5 * load_balancing_loss(moe.router(x), chosen)
    torch.testing.assert_close(out["aux_loss"], expected_aux)


def test_noise_perturbs_routing_in_training_only():
    moe = _moe()
    x = torch.randn(64, 6)
    with torch.no_grad():
        moe.router.weight.zero_()  # ties everywhere: only the noise can choose
    first = moe.route(x)[2]
    assert torch.equal(first, moe.route(x)[2])  # eval: deterministic
    moe.train()
    assert not torch.equal(moe.route(x)[2], moe.route(x)[2])


def test_diagnostics_report_each_experts_share_of_routing_slots():
    moe = _moe()
    x = torch.randn(10, 6)
    moe.reset_diagnostics()
    moe(x)
    _, chosen = top_k_gates(moe.router(x), 2)
    d = moe.diagnostics()
    for e in range(4):
        assert d[f"moe_expert{e}_share"] == pytest.approx(float((chosen == e).sum()) / 20)
    share = torch.tensor([d[f"moe_expert{e}_share"] for e in range(4)])
    entropy = -(share * share.clamp(min=1e-12).log()).sum() / math.log(4)
    assert d["moe_usage_entropy"] == pytest.approx(float(entropy))
    moe.reset_diagnostics()
    assert moe.diagnostics() == {}


def test_top_k_outside_one_to_e_is_refused():
    with pytest.raises(ValueError, match="top_k"):
        MoEHeads(MoEConfig(num_experts=2, top_k=3), d_model=4)
