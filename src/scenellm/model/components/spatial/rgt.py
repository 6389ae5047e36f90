"""``rgt``: SPADE's relational graph transformer (arXiv 2507.05798, §3.3) as a spatial
aggregator.

Graph over the objects of each frame, A_ij = 1 (i ≠ j, same frame) when the boxes are
adjacent (they overlap or their gap is at most ``adjacency_margin`` on both axes) or the
object tokens' cosine similarity exceeds ``similarity_threshold``. Neighbours
P⁺(i) = {i} ∪ {j : A_ij = 1}; non-neighbours P⁻(i) = {j ≠ i in i's frame : A_ij = 0}.
Each block:

    q ← q + Att_{P⁺}(q) + Att_{P⁻}(q)          long-range context, two masked attentions
    q ← q + MLP(LN(q))                          fusion
    q ← q + ReLU(Â q W),  Â = D^-½ (A + I) D^-½  local context, a GCN over the same graph

A frame token is the mean of its objects' final states, projected; a frame without objects
gets a learned token. Ours to choose (SPADE leaves open or works on panoptic masks):
adjacency from boxes, cosine over the input tokens, one shared width, block count; SPADE's
relation-query selection loss and its diffusion-inversion priors are out of scope.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scenellm.model.components.registry import option
from scenellm.model.components.spatial.nodes import (
    MaskedSelfAttention,
    NodeEmbedding,
    pool_frames,
    same_frame,
)


@dataclass
class RGTConfig:
    blocks: int = option(1, "RGT blocks (two masked attentions, MLP, GCN each).")
    heads: int = option(4, "Attention heads.")
    similarity_threshold: float = option(0.5, "Cosine similarity above which two objects "
                                              "are neighbours.")
    adjacency_margin: float = option(0.02, "Largest gap between boxes (image-normalised) "
                                           "that still counts as adjacent.")


def adjacent_boxes(boxes: torch.Tensor, margin: float) -> torch.Tensor:
    """(N, N) bool: the gap between boxes i and j is ≤ margin along x and along y
    (overlapping boxes have a negative gap)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    gap_x = torch.maximum(x1[:, None], x1[None]) - torch.minimum(x2[:, None], x2[None])
    gap_y = torch.maximum(y1[:, None], y1[None]) - torch.minimum(y2[:, None], y2[None])
    return (gap_x <= margin) & (gap_y <= margin)


def relation_graph(tokens: torch.Tensor, boxes: torch.Tensor, frame_of_obj: torch.Tensor,
                   threshold: float, margin: float) -> torch.Tensor:
    """SPADE's graph A (N, N) bool: same frame, i ≠ j, adjacent boxes or cos > threshold."""
    unit = F.normalize(tokens.detach().float(), dim=-1)
    similar = unit @ unit.T > threshold
    return same_frame(frame_of_obj) & (adjacent_boxes(boxes, margin) | similar)


def normalized_graph(graph: torch.Tensor) -> torch.Tensor:
    """Â = D^-½ (A + I) D^-½ as a dense (N, N) float matrix."""
    a = graph.float() + torch.eye(len(graph), device=graph.device)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None]


class RGTBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.near = MaskedSelfAttention(dim, heads)  # over P⁺
        self.far = MaskedSelfAttention(dim, heads)  # over P⁻
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.gcn = nn.Linear(dim, dim)

    def forward(self, q: torch.Tensor, neighbours: torch.Tensor, others: torch.Tensor,
                adjacency: torch.Tensor) -> torch.Tensor:
        q = q + self.near(q, neighbours) + self.far(q, others)  # (N, d)
        q = q + self.mlp(self.norm(q))
        return q + torch.relu(adjacency.to(q.dtype) @ self.gcn(q))


class RelationalGraphTransformer(nn.Module):
    reads_text = False

    def __init__(self, config: RGTConfig, token_dim: int, out_dim: int) -> None:
        super().__init__()
        self.config = config
        self.embed = NodeEmbedding(token_dim, out_dim)
        self.blocks = nn.ModuleList(RGTBlock(out_dim, config.heads) for _ in range(config.blocks))
        self.frame_proj = nn.Linear(out_dim, out_dim)
        self.empty_token = nn.Parameter(0.02 * torch.randn(out_dim))

    def masks(self, tokens: torch.Tensor, boxes: torch.Tensor,
              frame_of_obj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(graph A, P⁺ mask incl. self, P⁻ mask), each (N, N) bool."""
        c = self.config
        graph = relation_graph(tokens, boxes, frame_of_obj, c.similarity_threshold,
                               c.adjacency_margin)
        neighbours = graph | torch.eye(len(graph), dtype=torch.bool, device=graph.device)
        others = same_frame(frame_of_obj) & ~graph
        return graph, neighbours, others

    def forward(self, obj_tokens, boxes, frame_of_obj, num_frames, return_objects=False,
                text: torch.Tensor | None = None):
        """Same contract as :meth:`scenellm.model.sia.SpatialAggregator.forward`."""
        graph, neighbours, others = self.masks(obj_tokens, boxes, frame_of_obj)
        adjacency = normalized_graph(graph)  # (N, N)
        q = self.embed(obj_tokens, boxes)  # (N, d)
        for block in self.blocks:
            q = block(q, neighbours, others, adjacency)
        has_objects = torch.bincount(frame_of_obj, minlength=num_frames) > 0  # (F,)
        pooled = self.frame_proj(pool_frames(q, frame_of_obj, num_frames))  # (F, d)
        frame_tokens = torch.where(has_objects[:, None], pooled, self.empty_token.to(q.dtype))
        return (frame_tokens, q) if return_objects else frame_tokens
