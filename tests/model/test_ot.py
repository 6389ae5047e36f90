"""OTAggregator and code_histogram: shapes, OT invariants, POT reference, masking, gradients."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from scenellm.model.ot import OTAggregator, code_histogram

B, T, TOKEN_DIM, K, CODE_DIM, M = 3, 5, 8, 12, 4, 3


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    frame_tokens = torch.randn(B, T, TOKEN_DIM, generator=gen)
    frame_mask = torch.ones(B, T, dtype=torch.bool)
    frame_mask[1, 3:] = False
    frame_mask[2, 1:] = False
    frame_tokens[~frame_mask] = 0.0  # padded frames
    indices = torch.randint(0, K, (B, 20), generator=gen)
    indices[0, 15:] = -1
    codebook = torch.randn(K, CODE_DIM, generator=gen)
    return frame_tokens, frame_mask, indices, codebook


def _aggregator(seed: int = 0, **kwargs) -> OTAggregator:
    torch.manual_seed(seed)
    return OTAggregator(CODE_DIM, TOKEN_DIM, M, **kwargs)


def _run(model: OTAggregator, seed: int = 0):
    frame_tokens, frame_mask, indices, codebook = _inputs(seed)
    histogram = model.code_histogram(indices, K)
    return model(frame_tokens, frame_mask, histogram, codebook), histogram


def test_code_histogram_counts_smooths_and_ignores_padding():
    indices = torch.tensor([[0, 2, 2, -1], [1, -1, -1, -1]])
    histogram = code_histogram(indices, 3, smoothing=0.5)
    expected = torch.tensor([[1.5, 0.5, 2.5], [0.5, 1.5, 0.5]])
    torch.testing.assert_close(histogram, expected / expected.sum(1, keepdim=True))
    empty = code_histogram(torch.full((1, 4), -1), 3, smoothing=1e-3)
    torch.testing.assert_close(empty, torch.full((1, 3), 1 / 3))


@pytest.mark.parametrize(
    ("indices", "smoothing"),
    [
        (torch.tensor([[0, 3]]), 1e-3),  # id >= K
        (torch.tensor([[0, -2]]), 1e-3),  # below the padding id
        (torch.tensor([0, 1]), 1e-3),  # not (B, L)
        (torch.tensor([[-1, -1]]), 0.0),  # empty video, no smoothing
        (torch.tensor([[0, 1]]), -1.0),
    ],
)
def test_code_histogram_rejects_bad_input(indices, smoothing):
    with pytest.raises(ValueError):
        code_histogram(indices, 3, smoothing)


def test_output_shapes_and_info():
    (scene_tokens, info), _ = _run(_aggregator())
    assert scene_tokens.shape == (B, T, TOKEN_DIM)
    assert info["plan"].shape == (B, K, M)
    assert info["scene_words"].shape == (B, M, CODE_DIM)
    assert info["attention"].shape == (B, T, M)
    assert torch.isfinite(scene_tokens).all()


def test_scene_words_are_convex_combinations_of_codebook_rows():
    model = _aggregator()
    (_, info), _ = _run(model)
    codebook = _inputs()[3]
    weights = info["plan"] / info["plan"].sum(dim=1, keepdim=True)  # (B, K, M)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(B, M))
    torch.testing.assert_close(info["scene_words"], weights.transpose(1, 2) @ codebook)
    low, high = codebook.min(dim=0).values, codebook.max(dim=0).values
    assert ((info["scene_words"] >= low - 1e-6) & (info["scene_words"] <= high + 1e-6)).all()


def test_plan_marginals_and_pot_reference():
    model = _aggregator(epsilon=0.05, max_iter=2000, tol=1e-7)
    (_, info), histogram = _run(model)
    plan = info["plan"].detach()
    torch.testing.assert_close(plan.sum(dim=2), histogram, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(plan.sum(dim=1), torch.full((B, M), 1 / M), rtol=0, atol=1e-6)
    # independent reference: cost built in numpy, plan from POT, float64
    codebook = _inputs()[3].double().numpy()
    anchors = model.anchors.detach().double().numpy()
    cost = ((codebook[:, None, :] - anchors[None, :, :]) ** 2).sum(-1)
    cost /= cost.max()
    for i in range(B):
        expected = ot.sinkhorn(
            histogram[i].double().numpy(),
            np.full(M, 1 / M),
            cost,
            0.05,
            method="sinkhorn_log",
            numItermax=2000,
            stopThr=1e-7,
        )
        torch.testing.assert_close(
            plan[i].double(), torch.from_numpy(expected), rtol=2e-5, atol=1e-8
        )


def test_masked_frames_unchanged_and_valid_frames_get_the_residual():
    model = _aggregator()
    (scene_tokens, info), _ = _run(model)
    frame_tokens, frame_mask, _, _ = _inputs()
    assert torch.equal(scene_tokens[~frame_mask], frame_tokens[~frame_mask])
    words = model.project(info["scene_words"])  # (B, M, d)
    attention = torch.softmax(frame_tokens @ words.transpose(1, 2) / math.sqrt(TOKEN_DIM), -1)
    expected = frame_tokens + attention @ words
    torch.testing.assert_close(scene_tokens[frame_mask], expected[frame_mask])
    assert not torch.allclose(scene_tokens[frame_mask], frame_tokens[frame_mask])


def test_gradient_reaches_anchors_and_projection():
    model = _aggregator()
    (scene_tokens, _), _ = _run(model)
    scene_tokens.square().sum().backward()
    for name in ("anchors", "project.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_deterministic_for_a_seed():
    (first, info_first), _ = _run(_aggregator(seed=3))
    (second, info_second), _ = _run(_aggregator(seed=3))
    (other, _), _ = _run(_aggregator(seed=4))
    assert torch.equal(first, second) and torch.equal(info_first["plan"], info_second["plan"])
    assert not torch.equal(first, other)


def test_mismatched_codebook_raises():
    model = _aggregator()
    frame_tokens, frame_mask, indices, codebook = _inputs()
    with pytest.raises(ValueError, match="codebook"):
        model(frame_tokens, frame_mask, model.code_histogram(indices, K), codebook[:-1])
