"""What the graph-based spatial components share: object nodes from token and box, pooling
of node states into frame tokens, and attention restricted by a boolean mask."""

from __future__ import annotations

import math

import torch
from torch import nn

from scenellm.model.sia import BOX_GEOMETRY_DIM, box_geometry


class NodeEmbedding(nn.Module):
    """x_i = W [token_i ; MLP(geometry(box_i))] → (N, out_dim), as SIA builds its objects."""

    def __init__(self, token_dim: int, out_dim: int, box_dim: int = 32) -> None:
        super().__init__()
        self.box_mlp = nn.Sequential(nn.Linear(BOX_GEOMETRY_DIM, box_dim), nn.ReLU(),
                                     nn.Linear(box_dim, box_dim))
        self.proj = nn.Linear(token_dim + box_dim, out_dim)

    def forward(self, tokens: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([tokens, self.box_mlp(box_geometry(boxes))], dim=-1))


def same_frame(frame_of_obj: torch.Tensor) -> torch.Tensor:
    """(N, N) bool: i and j are distinct objects of one frame."""
    same = frame_of_obj[:, None] == frame_of_obj[None, :]
    return same & ~torch.eye(len(frame_of_obj), dtype=torch.bool, device=same.device)


def pool_frames(h: torch.Tensor, frame_of_obj: torch.Tensor, num_frames: int,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean of node states per frame: (N, D) → (F, D); frames without nodes get 0.

        pool_f = Σ_{i ∈ f} w_i h_i / Σ_{i ∈ f} w_i        (w = 1 when weights is None)
    """
    w = torch.ones_like(h[:, 0]) if weights is None else weights  # (N,)
    total = h.new_zeros(num_frames, h.shape[1]).index_add_(0, frame_of_obj, w[:, None] * h)
    norm = h.new_zeros(num_frames).index_add_(0, frame_of_obj, w).clamp(min=1e-6)
    return total / norm[:, None]


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     allowed: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √d) v over the allowed keys only; a row with no allowed key gives 0.

    Args:
        q, k, v: (H, N, d) per-head queries, keys, values.
        allowed: (N, N) bool, True where query i may attend to key j.

    Returns:
        (H, N, d).
    """
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (H, N, N)
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all -inf rows → 0
    return weights @ v


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention whose keys are restricted per query by a boolean mask."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        n, d = x.shape
        q, k, v = self.qkv(x).view(n, 3, self.heads, d // self.heads).permute(1, 2, 0, 3)
        y = masked_attention(q, k, v, allowed)  # (H, N, d / H)
        return self.out(y.transpose(0, 1).reshape(n, d))
