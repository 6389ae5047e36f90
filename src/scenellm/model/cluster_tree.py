"""The SIA tree of a frame: objects → groups → frame ("strokes → radicals → character").

Objects of a frame are grouped by agglomerative clustering of their boxes; the tree has one
node per object, one per group and one per frame. All frames of a batch form one
block-diagonal graph, whose symmetric-normalised adjacency

    Â = D^{-1/2} (A + I) D^{-1/2},   D_ii = Σ_j (A + I)_ij

is what the SIA graph convolution propagates over.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage


def _first_appearance_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel cluster ids 0..k-1 in order of first appearance, so output is canonical."""
    uniq, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(uniq))
    return rank[inverse]


def cluster_tree(
    boxes: np.ndarray, max_groups: int = 3, distance_threshold: float = 0.25
) -> np.ndarray:
    """Group one frame's boxes by average-linkage clustering.

    Each box (x1, y1, x2, y2), normalised to [0, 1], becomes the feature (cx, cy, w, h);
    the dendrogram (Euclidean, 'average' linkage) is cut at ``distance_threshold`` and, when
    that leaves more than ``max_groups`` groups, into at most ``max_groups`` groups instead.

    Args:
        boxes: (n, 4) xyxy boxes of one frame.
        max_groups: the most groups a frame may have.
        distance_threshold: largest average distance between boxes of one group.

    Returns:
        (n,) int64 group ids in 0..k-1, numbered by first appearance (deterministic).
    """
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1, got {max_groups}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    feats = np.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2,
            boxes[:, 2] - boxes[:, 0],
            boxes[:, 3] - boxes[:, 1],
        ],
        axis=1,
    )  # (n, 4)
    tree = linkage(feats, method="average", metric="euclidean")
    labels = fcluster(tree, t=distance_threshold, criterion="distance")
    if labels.max() > max_groups:
        labels = fcluster(tree, t=max_groups, criterion="maxclust")
    return _first_appearance_labels(labels)


@lru_cache(maxsize=1 << 16)
def _cached_cluster_tree(boxes_key: bytes, max_groups: int, distance_threshold: float):
    """cluster_tree keyed by a frame's float64 box bytes: boxes are cached features, so
    every epoch after the first skips scipy (~0.3 ms per frame)."""
    groups = cluster_tree(np.frombuffer(boxes_key).reshape(-1, 4), max_groups, distance_threshold)
    groups.setflags(write=False)  # shared between callers
    return groups


def frame_trees(
    boxes: np.ndarray,
    frame_of_obj: np.ndarray,
    max_groups: int = 3,
    distance_threshold: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster every frame of a batch; groups get batch-global ids.

    Args:
        boxes: (N, 4) xyxy boxes of all objects of the batch.
        frame_of_obj: (N,) global frame index of each object.

    Returns:
        group_of_obj: (N,) global group index in [0, G).
        frame_of_group: (G,) global frame index of each group.
    """
    frame_of_obj = np.asarray(frame_of_obj, dtype=np.int64)
    order = np.argsort(frame_of_obj, kind="stable")
    frames, starts, counts = np.unique(frame_of_obj[order], return_index=True, return_counts=True)
    group_of_obj = np.empty(len(frame_of_obj), dtype=np.int64)
    frame_of_group: list[np.ndarray] = []
    offset = 0
    for frame, start, count in zip(frames, starts, counts, strict=True):
        members = order[start : start + count]
        frame_boxes = np.ascontiguousarray(boxes[members], dtype=np.float64)
        local = _cached_cluster_tree(frame_boxes.tobytes(), max_groups, distance_threshold)
        group_of_obj[members] = local + offset
        k = int(local.max()) + 1
        frame_of_group.append(np.full(k, frame, dtype=np.int64))
        offset += k
    frame_of_group_arr = (
        np.concatenate(frame_of_group) if frame_of_group else np.zeros(0, dtype=np.int64)
    )
    return group_of_obj, frame_of_group_arr


def tree_edges(
    group_of_obj: torch.Tensor, frame_of_group: torch.Tensor, num_objects: int, num_groups: int
) -> torch.Tensor:
    """Undirected tree edges, both directions, over nodes [objects | groups | frames].

    Node ids: object i → i, group g → N + g, frame f → N + G + f.

    Returns:
        (2, 4 (N + G)) long edge index (source row, target row).
    """
    obj = torch.arange(num_objects, device=group_of_obj.device)
    grp = torch.arange(num_groups, device=group_of_obj.device) + num_objects
    src = torch.cat([obj, grp])  # child nodes
    dst = torch.cat([group_of_obj + num_objects, frame_of_group + num_objects + num_groups])
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # (2, E)


def normalized_adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Sparse Â = D^{-1/2} (A + I) D^{-1/2} for an edge list without self loops.

    Args:
        edge_index: (2, E) long (row, col) pairs; listed once per direction.
        num_nodes: size of the square matrix.

    Returns:
        (num_nodes, num_nodes) coalesced sparse COO tensor (float32).
    """
    loops = torch.arange(num_nodes, device=edge_index.device)
    index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)  # (2, E + n)
    ones = torch.ones(index.shape[1], device=edge_index.device)
    degree = torch.zeros(num_nodes, device=edge_index.device).index_add_(0, index[0], ones)
    inv_sqrt = degree.rsqrt()
    values = inv_sqrt[index[0]] * inv_sqrt[index[1]]
    # Indices are built above and in range by construction: skip the invariant checks.
    adjacency = torch.sparse_coo_tensor(
        index, values, (num_nodes, num_nodes), check_invariants=False
    )
    return adjacency.coalesce()
