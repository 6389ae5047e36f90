"""VEGA-3D's token-level adaptive gate over the box-motion stream: the gate's range, its
independence across pairs, the base fusion it starts from, and the motion stream itself."""

from __future__ import annotations

import torch

from scenellm.model.components.fusion.adaptive import AdaptiveFusion, AdaptiveFusionConfig
from scenellm.model.components.fusion.gate import GateFusion, GateFusionConfig
from scenellm.model.components.fusion.motion import (
    MOTION_DIM,
    Tracks,
    pair_motion,
    previous_object,
)
from scenellm.model.sia import box_geometry

# video 0: frames 0 and 1, a person and an object each; video 1: frame 2, one person
BOXES = torch.tensor([[0.0, 0.0, 0.2, 0.4], [0.5, 0.5, 0.6, 0.6],   # frame 0
                      [0.52, 0.5, 0.62, 0.6], [0.1, 0.0, 0.3, 0.4],  # frame 1, swapped order
                      [0.0, 0.0, 0.2, 0.4]])                         # frame 2 (video 1)
TRACKS = Tracks(frame_of_obj=torch.tensor([0, 0, 1, 1, 2]),
                video_of_obj=torch.tensor([0, 0, 0, 0, 1]))
PAIRS = torch.tensor([[0, 1], [3, 2]])


def test_objects_follow_the_nearest_centre_of_the_previous_frame_of_their_video():
    # frame 2 follows frame 1 in the batch but starts video 1: no predecessor
    assert previous_object(BOXES, TRACKS).tolist() == [-1, -1, 1, 0, -1]


def test_motion_stream_holds_each_boxs_change_since_the_previous_frame():
    m = pair_motion(BOXES, PAIRS, TRACKS)
    assert m.shape == (2, MOTION_DIM)
    g = box_geometry(BOXES)
    torch.testing.assert_close(m[1, 24:33], g[3] - g[0])  # subject (person) moved +0.1 in x
    torch.testing.assert_close(m[1, 33:42], g[2] - g[1])
    assert m[1, 42:].tolist() == [1.0, 1.0] and m[0, 42:].tolist() == [0.0, 0.0]
    assert torch.equal(m[0, 24:42], torch.zeros(18))  # first frame: no velocity
    assert torch.equal(pair_motion(BOXES, PAIRS, None)[:, 24:], torch.zeros(2, 20))


def _fusion(bias: float = -2.0) -> AdaptiveFusion:
    torch.manual_seed(0)
    return AdaptiveFusion(AdaptiveFusionConfig(gate_init_bias=bias), d_model=8, gate_alpha=0.5)


def test_gate_lies_in_zero_one_per_token_and_channel():
    fusion = _fusion()
    s, e = 2 * torch.randn(50, 8), 2 * torch.randn(50, 8)
    fused, g = fusion.mix(s, e)
    assert g.shape == (50, 8) and bool((g > 0).all() and (g < 1).all())
    torch.testing.assert_close(fused, s + g * e)


def test_each_pairs_gate_depends_on_that_pair_alone():
    fusion = _fusion()
    s, e = torch.randn(4, 8), torch.randn(4, 8)
    _, g = fusion.mix(s, e)
    s2, e2 = s.clone(), e.clone()
    s2[2] += 3.0
    e2[2] -= 3.0
    _, g2 = fusion.mix(s2, e2)
    torch.testing.assert_close(g2[[0, 1, 3]], g[[0, 1, 3]])
    assert not torch.allclose(g2[2], g[2])


def test_a_closed_gate_leaves_the_alpha_fusion_unchanged():
    fusion = _fusion(bias=-60.0)
    with torch.no_grad():
        fusion.gate.weight.zero_()
    query, decoded = torch.randn(2, 8), torch.randn(2, 8)
    base = GateFusion(GateFusionConfig(), d_model=8, gate_alpha=0.5)(query, decoded)
    out = fusion(query, decoded, motion=(BOXES, PAIRS, TRACKS))
    torch.testing.assert_close(out, base)
    torch.testing.assert_close(base, 0.5 * query + 0.5 * decoded)


def test_gate_statistics_are_the_mean_spread_and_share_above_half():
    fusion = _fusion(bias=0.0)
    fusion.reset_diagnostics()
    query = torch.randn(2, 8)
    fusion(query, None, motion=(BOXES, PAIRS, TRACKS))
    with torch.no_grad():
        _, g = fusion.mix(query, fusion.stream(pair_motion(BOXES, PAIRS, TRACKS)))
    d = fusion.diagnostics()
    assert abs(d["fusion_gate_mean"] - float(g.mean())) < 1e-6
    assert abs(d["fusion_gate_std"] - float(g.std(unbiased=False))) < 1e-6
    assert abs(d["fusion_gate_above_half"] - float((g > 0.5).float().mean())) < 1e-9
