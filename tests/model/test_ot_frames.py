"""FrameOTAggregator (OT over the frame-token sequence) and the sentence layout: plan
against POT, frames that depend on each other, padding, discrete words, fp32 under
autocast."""

from __future__ import annotations

import numpy as np
import ot
import torch

from scenellm.model.codebook import squared_distances
from scenellm.model.ot_frames import FrameOTAggregator
from scenellm.model.sentence import sentence_slots

B, T, D, M = 2, 5, 6, 3


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(B, T, D, generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 3:] = False
    tokens[~mask] = 0.0
    return tokens, mask


def _aggregator(**kwargs) -> FrameOTAggregator:
    torch.manual_seed(0)
    return FrameOTAggregator(D, M, **kwargs)


def test_plan_matches_pot_on_the_normalised_frame_cost():
    tokens, mask = _inputs()
    model = _aggregator(epsilon=0.1, max_iter=2000, tol=1e-9)
    with torch.no_grad():
        _, info = model(tokens.double(), mask)
    for b in range(B):
        n = int(mask[b].sum())
        x, z = tokens[b, :n].double().numpy(), model.anchors.detach().double().numpy()
        cost = ((x[:, None] - z[None]) ** 2).sum(-1)
        full = ((tokens[b].double().numpy()[:, None] - z[None]) ** 2).sum(-1)
        cost /= full.max()  # the module normalises over the padded rows too
        ref = ot.sinkhorn(np.full(n, 1 / n), np.full(M, 1 / M), cost, 0.1, numItermax=20000,
                          stopThr=1e-12)
        np.testing.assert_allclose(info["plan"][b, :n].numpy(), ref, atol=1e-8)
        assert info["plan"][b, n:].abs().sum() == 0  # padding frames carry no mass
    assert info["converged"].all()


def test_scene_words_are_plan_weighted_means_of_frames_and_words_are_argmax():
    tokens, mask = _inputs()
    model = _aggregator()
    with torch.no_grad():
        out, info = model(tokens, mask)
    plan = info["plan"]
    expected = (plan.transpose(1, 2) @ tokens) / plan.sum(1)[..., None]
    torch.testing.assert_close(info["scene_words"], expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(info["words"], plan.argmax(-1))
    chosen = torch.stack([info["scene_words"][b, info["words"][b]] for b in range(B)])
    torch.testing.assert_close(out[mask], (tokens + model.project(chosen))[mask])
    torch.testing.assert_close(out[~mask], tokens[~mask], rtol=0, atol=0)


def test_a_frame_becomes_what_the_other_frames_make_it():
    tokens, mask = _inputs()
    model = _aggregator()
    changed = tokens.clone()
    changed[0, 4] += 5.0  # the last frame of video 0 only
    with torch.no_grad():
        a, _ = model(tokens, mask)
        b, _ = model(changed, mask)
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-4  # frame 0 moved with frame 4
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)  # another video did not


def test_unconverged_problems_are_reported():
    tokens, mask = _inputs()
    with torch.no_grad():
        _, loose = _aggregator(epsilon=0.02, max_iter=1, tol=1e-9)(tokens, mask)
        _, tight = _aggregator(epsilon=0.5, max_iter=500, tol=1e-6)(tokens, mask)
    assert not loose["converged"].any()
    assert tight["converged"].all()


def test_plan_stays_float32_under_bf16_autocast():
    tokens, mask = _inputs()
    model = _aggregator()
    with torch.no_grad():
        _, plain = model(tokens, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, cast = model(tokens, mask)
    assert cast["plan"].dtype == torch.float32
    torch.testing.assert_close(cast["plan"], plain["plan"], rtol=0, atol=1e-7)


def test_sentence_puts_each_frame_before_its_objects_in_order():
    # video 0: frames 0, 1 (global 0, 1); video 1: frame 0 (global 2); objects listed out of
    # frame order on purpose
    video_of_frame, frame_pos = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0])
    frame_of_obj = torch.tensor([1, 0, 0, 2, 1])
    video_of_obj = video_of_frame[frame_of_obj]
    frame_slot, obj_slot, length = sentence_slots(video_of_frame, frame_pos, video_of_obj,
                                                  frame_of_obj, 2)
    # video 0: [f0, o1, o2, f1, o0, o4]; video 1: [f2, o3]
    assert frame_slot.tolist() == [0, 3, 0]
    assert obj_slot.tolist() == [4, 1, 2, 1, 5]
    assert length == 6
    frames_only, none, length = sentence_slots(video_of_frame, frame_pos, None, None, 2)
    assert frames_only.tolist() == [0, 1, 0] and none is None and length == 2


def test_squared_distances_reference():
    x, z = torch.randn(4, 3), torch.randn(2, 3)
    torch.testing.assert_close(squared_distances(x, z), torch.cdist(x, z) ** 2, rtol=1e-4,
                               atol=1e-5)
