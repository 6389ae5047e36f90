"""SPADE's relational graph transformer: the graph, its neighbour / non-neighbour masks and
the attention restricted to each, on hand-built frames."""

from __future__ import annotations

import math

import torch

from scenellm.model.components.spatial.nodes import MaskedSelfAttention, masked_attention
from scenellm.model.components.spatial.rgt import (
    RelationalGraphTransformer,
    RGTConfig,
    adjacent_boxes,
    normalized_graph,
    relation_graph,
)

# frame 0: objects 0 and 1 touch, 2 is far from both; frame 1: objects 3 and 4 far apart
BOXES = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.21, 0.0, 0.4, 0.2], [0.8, 0.8, 0.9, 0.9],
                      [0.0, 0.0, 0.1, 0.1], [0.7, 0.7, 0.8, 0.8]])
FRAMES = torch.tensor([0, 0, 0, 1, 1])


def test_boxes_within_the_margin_are_adjacent_and_far_ones_are_not():
    adjacent = adjacent_boxes(BOXES, margin=0.02)
    assert adjacent[0, 1] and adjacent[1, 0]  # gap 0.01
    assert not adjacent[0, 2] and not adjacent[1, 2]
    assert not adjacent_boxes(BOXES, margin=0.005)[0, 1]  # gap 0.01 > 0.005


def test_graph_joins_similar_features_across_distance_but_never_across_frames():
    tokens = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [1.0, 0.0], [1.0, 0.05]])
    graph = relation_graph(tokens, BOXES, FRAMES, threshold=0.5, margin=0.02)
    expected = torch.zeros(5, 5, dtype=torch.bool)
    for i, j in [(0, 1), (0, 2), (3, 4)]:  # touching; cos(0, 2) ≈ 0.99; cos(3, 4) ≈ 1.0
        expected[i, j] = expected[j, i] = True
    assert torch.equal(graph, expected)  # (1, 2): far and cos ≈ 0.11; (0, 3): two frames


def test_neighbour_and_non_neighbour_masks_partition_each_frame():
    rgt = RelationalGraphTransformer(RGTConfig(similarity_threshold=0.5), token_dim=2, out_dim=8)
    tokens = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    graph, neighbours, others = rgt.masks(tokens, BOXES, FRAMES)
    p_plus = [[0, 1], [0, 1, 2], [1, 2], [3], [4]]  # self included; 1 and 2 are similar
    p_minus = [[2], [], [0], [4], [3]]
    for i in range(5):
        assert neighbours[i].nonzero().squeeze(1).tolist() == p_plus[i]
        assert others[i].nonzero().squeeze(1).tolist() == p_minus[i]
    assert not (neighbours & others).any()


def test_masked_attention_equals_a_loop_over_the_allowed_keys_and_gives_zero_without_any():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 3, generator=g) for _ in range(3))
    allowed = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]]).bool()
    out = masked_attention(q, k, v, allowed)
    for h in range(2):
        for i in range(4):
            keys = [j for j in range(4) if allowed[i, j]]
            if not keys:
                assert torch.equal(out[h, i], torch.zeros(3))
                continue
            s = torch.tensor([float(q[h, i] @ k[h, j]) / math.sqrt(3) for j in keys])
            w = torch.exp(s - s.max()) / torch.exp(s - s.max()).sum()
            expected = sum(w[n] * v[h, j] for n, j in enumerate(keys))
            torch.testing.assert_close(out[h, i], expected, rtol=1e-5, atol=1e-6)


def test_neighbour_attention_ignores_non_neighbours_and_vice_versa():
    torch.manual_seed(0)
    attention = MaskedSelfAttention(8, heads=2)
    allowed = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]]).bool()
    x = torch.randn(3, 8)
    moved = x.clone()
    moved[2] += 5.0  # node 2 is no neighbour of 0 or 1
    torch.testing.assert_close(attention(x, allowed)[:2], attention(moved, allowed)[:2])
    assert not torch.allclose(attention(x, ~allowed)[:2], attention(moved, ~allowed)[:2])


def test_normalized_graph_is_symmetric_degree_scaling_with_self_loops():
    graph = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]]).bool()
    expected = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(normalized_graph(graph), expected)


def test_frames_do_not_see_each_other_and_empty_frames_get_the_learned_token():
    torch.manual_seed(0)
    rgt = RelationalGraphTransformer(RGTConfig(), token_dim=4, out_dim=8).eval()
    tokens = torch.randn(5, 4)
    frame_tokens, states = rgt(tokens, BOXES, FRAMES, num_frames=3, return_objects=True)
    moved = tokens.clone()
    moved[3:] += 3.0  # change frame 1 only
    frame_tokens_2, states_2 = rgt(moved, BOXES, FRAMES, num_frames=3, return_objects=True)
    torch.testing.assert_close(states[:3], states_2[:3])
    torch.testing.assert_close(frame_tokens[0], frame_tokens_2[0])
    assert torch.equal(frame_tokens[2], rgt.empty_token.detach())
    assert frame_tokens.shape == (3, 8) and states.shape == (5, 8)
