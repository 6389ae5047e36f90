"""SIA: box clustering tree, normalised tree adjacency and the SpatialAggregator GCN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenellm.model.cluster_tree import (
    cluster_tree,
    frame_trees,
    normalized_adjacency,
    tree_edges,
)
from scenellm.model.sia import SpatialAggregator, box_geometry


def _partition(groups: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(groups == g).tolist()) for g in np.unique(groups)}


def _random_boxes(gen: torch.Generator, n: int) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * 0.6
    wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.05
    return torch.cat([xy, xy + wh], dim=1)  # (n, 4) xyxy in [0, 1]


# Two tight clusters: small boxes top-left, large boxes bottom-right.
TWO_CLUSTERS = np.array(
    [
        [0.05, 0.05, 0.15, 0.15],
        [0.60, 0.55, 0.95, 0.95],
        [0.06, 0.04, 0.16, 0.14],
        [0.62, 0.57, 0.96, 0.94],
        [0.04, 0.06, 0.14, 0.17],
    ]
)


def test_cluster_tree_separates_two_clusters():
    groups = cluster_tree(TWO_CLUSTERS, max_groups=3)
    assert groups.tolist() == [0, 1, 0, 1, 0]


def test_cluster_tree_is_deterministic_and_order_free():
    rng = np.random.default_rng(0)
    boxes = _random_boxes(torch.Generator().manual_seed(0), 7).numpy()
    first = cluster_tree(boxes)
    assert len(_partition(first)) == 3
    np.testing.assert_array_equal(first, cluster_tree(boxes.copy()))
    perm = rng.permutation(7)
    permuted = cluster_tree(boxes[perm])
    # Row i of the permuted input is original object perm[i].
    assert {frozenset(perm[list(s)].tolist()) for s in _partition(permuted)} == _partition(first)


def test_cluster_tree_caps_groups():
    spread = np.array([[x, x, x + 0.05, x + 0.05] for x in (0.0, 0.15, 0.4, 0.5, 0.85)])
    assert cluster_tree(spread, distance_threshold=0.01).max() + 1 == 3  # default cap
    assert cluster_tree(spread, max_groups=2, distance_threshold=0.01).max() + 1 == 2


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        (np.zeros((0, 4)), []),
        (np.array([[0.1, 0.1, 0.3, 0.4]]), [0]),
        (np.tile([[0.2, 0.2, 0.5, 0.5]], (4, 1)), [0, 0, 0, 0]),
    ],
)
def test_cluster_tree_degenerate_frames(boxes, expected):
    assert cluster_tree(boxes).tolist() == expected


def test_frame_trees_gives_global_group_ids():
    boxes = np.concatenate([TWO_CLUSTERS, TWO_CLUSTERS[:1]])
    frame_of_obj = np.array([2, 2, 2, 2, 2, 0])  # frame 1 is empty
    group_of_obj, frame_of_group = frame_trees(boxes, frame_of_obj)
    assert frame_of_group.tolist() == [0, 2, 2]
    assert group_of_obj.tolist() == [1, 2, 1, 2, 1, 0]


def test_normalized_adjacency_matches_dense_reference():
    # Frame 0: objects 0, 1 in group 0 and object 2 in group 1; frame 1: object 3 in group 2.
    group_of_obj = torch.tensor([0, 0, 1, 2])
    frame_of_group = torch.tensor([0, 0, 1])
    n_nodes = 4 + 3 + 3  # objects, groups, frames (frame 2 empty)
    got = normalized_adjacency(tree_edges(group_of_obj, frame_of_group, 4, 3), n_nodes)

    a = np.eye(n_nodes)
    for u, v in [(0, 4), (1, 4), (2, 5), (3, 6), (4, 7), (5, 7), (6, 8)]:
        a[u, v] = a[v, u] = 1.0
    d = np.diag(1.0 / np.sqrt(a.sum(axis=1)))
    np.testing.assert_allclose(got.to_dense().numpy(), d @ a @ d, rtol=0, atol=1e-6)


def test_one_layer_sia_matches_dense_gcn():
    torch.manual_seed(0)
    sia = SpatialAggregator(token_dim=3, box_dim=4, out_dim=5, gcn_layers=1)
    boxes = torch.tensor(TWO_CLUSTERS[[0, 2, 1, 0]], dtype=torch.float32)
    tokens = torch.randn(4, 3)
    frame_of_obj = torch.tensor([0, 0, 0, 1])  # groups {0, 1}, {2} | {3}; frame 2 empty
    got = sia(tokens, boxes, frame_of_obj, num_frames=3)

    x = torch.cat([tokens, sia.box_mlp(box_geometry(boxes))], dim=1)  # (4, 7)
    g = torch.stack([(x[0] + x[1]) / 2, x[2], x[3]])  # group means
    f = torch.stack([(g[0] + g[1]) / 2, g[2], torch.zeros(7)])  # frame means
    h = torch.cat([x, g, f]).double()
    a = torch.eye(10, dtype=torch.float64)
    for u, v in [(0, 4), (1, 4), (2, 5), (3, 6), (4, 7), (5, 7), (6, 8)]:
        a[u, v] = a[v, u] = 1.0
    d = torch.diag(a.sum(dim=1).rsqrt())
    layer = sia.gcn[0]
    ref = d @ a @ d @ h @ layer.linear.weight.double().T + layer.bias.double()
    torch.testing.assert_close(got[:2].double(), ref[7:9], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[2], sia.empty_token.detach())


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(1)
    frame_of_obj = torch.tensor([0, 0, 0, 0, 1, 1, 1, 3, 0])  # frame 2 empty
    return torch.randn(9, 6, generator=gen), _random_boxes(gen, 9), frame_of_obj


@pytest.fixture
def sia():
    torch.manual_seed(0)
    return SpatialAggregator(token_dim=6, box_dim=8, hidden_dim=16, out_dim=12, gcn_layers=2)


def test_sia_shapes_and_empty_frame(sia, batch):
    tokens, boxes, frame_of_obj = batch
    frames, objects = sia(tokens, boxes, frame_of_obj, num_frames=5, return_objects=True)
    assert frames.shape == (5, 12) and objects.shape == (9, 12)
    for empty in (2, 4):
        torch.testing.assert_close(frames[empty], sia.empty_token.detach())
    none = sia(tokens[:0], boxes[:0], frame_of_obj[:0], num_frames=2)
    torch.testing.assert_close(none, sia.empty_token.detach().expand(2, -1))


def test_sia_frame_token_depends_only_on_its_frame(sia, batch):
    tokens, boxes, frame_of_obj = batch
    before = sia(tokens, boxes, frame_of_obj, num_frames=4)
    in_frame0 = frame_of_obj == 0
    tokens2, boxes2 = tokens.clone(), boxes.clone()
    tokens2[in_frame0] += torch.randn_like(tokens2[in_frame0])
    boxes2[in_frame0] = boxes2[in_frame0] * 0.5 + 0.1
    after = sia(tokens2, boxes2, frame_of_obj, num_frames=4)
    assert not torch.allclose(before[0], after[0], atol=1e-3)
    torch.testing.assert_close(after[1:], before[1:], rtol=0, atol=1e-6)


def test_sia_frame_token_is_permutation_invariant(sia, batch):
    tokens, boxes, frame_of_obj = batch
    before = sia(tokens, boxes, frame_of_obj, num_frames=4)
    perm = torch.tensor([8, 3, 1, 0, 6, 4, 5, 7, 2])  # shuffles within frames and across rows
    after = sia(tokens[perm], boxes[perm], frame_of_obj[perm], num_frames=4)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


def test_sia_gradient_reaches_box_mlp(sia, batch):
    tokens, boxes, frame_of_obj = batch
    sia(tokens, boxes, frame_of_obj, num_frames=4).pow(2).sum().backward()
    for p in sia.box_mlp.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_sia_rejects_frame_index_out_of_range(sia, batch):
    tokens, boxes, frame_of_obj = batch
    with pytest.raises(ValueError, match="num_frames"):
        sia(tokens, boxes, frame_of_obj, num_frames=3)
