"""Spatial Information Aggregation (SIA): one token per frame from its objects.

SceneLLM (arXiv 2412.11026, §3.2) composes a frame like a Chinese character composes strokes
into radicals: each object's (quantized) token is joined with an MLP embedding of its box,
agglomerative clustering of the frame's boxes gives a tree objects → groups → frame, and a
GCN over that tree yields the frame token. All frames of a batch share one block-diagonal
sparse adjacency, so the GCN runs once per layer for the whole batch.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from scenellm.model.cluster_tree import frame_trees, normalized_adjacency, tree_edges

BOX_GEOMETRY_DIM = 9


def box_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """Geometry features of xyxy boxes normalised to [0, 1].

    Returns:
        (..., 9): x1, y1, x2, y2, cx, cy, w, h, area (w · h).
    """
    x1, y1, x2, y2 = boxes.unbind(-1)
    w, h = x2 - x1, y2 - y1
    return torch.stack([x1, y1, x2, y2, (x1 + x2) / 2, (y1 + y2) / 2, w, h, w * h], dim=-1)


def _scatter_mean(x: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of the rows of x (M, D) per target index (M,) → (size, D); empty targets are 0."""
    total = x.new_zeros(size, x.shape[1]).index_add_(0, index, x)
    count = torch.bincount(index, minlength=size).clamp(min=1).to(x.dtype)
    return total / count[:, None]


class GraphConv(nn.Module):
    """One GCN layer before its nonlinearity (Kipf & Welling 2017): Â H W + b."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, adjacency: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        hw = self.linear(h)
        # Sparse matmul lacks bf16/fp16 kernels on CPU: propagate in float32.
        return torch.sparse.mm(adjacency, hw.float()).to(hw.dtype) + self.bias


class SpatialAggregator(nn.Module):
    """SIA: objects → groups → frame tree, GCN, one token per frame.

    Node features: object i gets x_i = [token_i ; MLP(geometry(box_i))]; a group node starts
    as the mean of its objects' x, a frame node as the mean of its groups. Layers compute
    H' = ReLU(Â H W + b), the last one without ReLU (the frame token is a free vector that
    later stages project). A frame without objects gets a learned empty token.

    Args:
        token_dim: width of the object tokens (VQ codes or continuous features).
        box_dim: width of the box-geometry embedding.
        hidden_dim: width of the hidden GCN layers.
        out_dim: width of the frame tokens and object states.
        gcn_layers: number of graph convolutions (>= 1).
        max_groups: the most groups a frame is clustered into.
        distance_threshold: dendrogram cut, see ``cluster_tree``.
    """

    def __init__(
        self,
        token_dim: int,
        box_dim: int = 32,
        hidden_dim: int = 128,
        out_dim: int = 128,
        gcn_layers: int = 2,
        max_groups: int = 3,
        distance_threshold: float = 0.25,
    ) -> None:
        super().__init__()
        if gcn_layers < 1:
            raise ValueError(f"gcn_layers must be >= 1, got {gcn_layers}")
        self.max_groups = max_groups
        self.distance_threshold = distance_threshold
        self.box_mlp = nn.Sequential(
            nn.Linear(BOX_GEOMETRY_DIM, box_dim), nn.ReLU(), nn.Linear(box_dim, box_dim)
        )
        dims = [token_dim + box_dim] + [hidden_dim] * (gcn_layers - 1) + [out_dim]
        self.gcn = nn.ModuleList(GraphConv(a, b) for a, b in pairwise(dims))
        self.empty_token = nn.Parameter(0.02 * torch.randn(out_dim))

    def forward(
        self,
        obj_tokens: torch.Tensor,
        boxes: torch.Tensor,
        frame_of_obj: torch.Tensor,
        num_frames: int,
        return_objects: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Aggregate the objects of every frame of a batch.

        Args:
            obj_tokens: (N, token_dim) object tokens.
            boxes: (N, 4) xyxy boxes normalised to [0, 1].
            frame_of_obj: (N,) long, global frame index in [0, num_frames).
            num_frames: F, the number of frames of the batch (empty ones included).
            return_objects: also return the object node states.

        Returns:
            frame_tokens (F, out_dim), and object_states (N, out_dim) if return_objects.
        """
        n = obj_tokens.shape[0]
        if n and int(frame_of_obj.max()) >= num_frames:
            raise ValueError(f"frame_of_obj has index >= num_frames ({num_frames})")
        group_np, frame_of_group_np = frame_trees(
            boxes.detach().float().cpu().numpy(),
            frame_of_obj.cpu().numpy(),
            self.max_groups,
            self.distance_threshold,
        )
        device = obj_tokens.device
        group_of_obj = torch.as_tensor(group_np, device=device)
        frame_of_group = torch.as_tensor(frame_of_group_np, device=device)
        g = len(frame_of_group)

        x_obj = torch.cat([obj_tokens, self.box_mlp(box_geometry(boxes))], dim=-1)  # (N, Din)
        x_group = _scatter_mean(x_obj, group_of_obj, g)  # (G, Din)
        x_frame = _scatter_mean(x_group, frame_of_group, num_frames)  # (F, Din)
        h = torch.cat([x_obj, x_group, x_frame])  # (N + G + F, Din)

        edges = tree_edges(group_of_obj, frame_of_group, n, g)
        adjacency = normalized_adjacency(edges, n + g + num_frames)
        for i, layer in enumerate(self.gcn):
            h = layer(adjacency, h)
            if i < len(self.gcn) - 1:
                h = torch.relu(h)

        has_objects = torch.bincount(frame_of_obj, minlength=num_frames) > 0  # (F,)
        frame_tokens = torch.where(has_objects[:, None], h[n + g :], self.empty_token)
        if return_objects:
            return frame_tokens, h[:n]
        return frame_tokens
