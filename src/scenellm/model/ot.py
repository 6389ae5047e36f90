"""OT temporal aggregation of SceneLLM (DESIGN §2 item 4): codebook → scene words → frames.

A video's code-usage histogram h over the VQ codebook C (K, D) is transported onto M < K
learnable anchors Z (M, D) with uniform mass, by entropic OT on the squared distances:

    Ĉ_km = ‖C_k - Z_m‖² / max_km ‖C_k - Z_m‖²           (max detached: ε is scale-free)
    P = sinkhorn(Ĉ, a = h, b = 1/M, ε)                    (B, K, M)
    C⁺_m = Σ_k P_km C_k / Σ_k P_km                        (barycentric projection, (B, M, D))

The scene words C⁺ are convex combinations of codebook rows, shared by all frames of a video,
so they carry the video-level ("temporally coherent") vocabulary. Each frame token x_t is
then expressed in C⁺ and added back as a residual:

    W = Linear(C⁺)                                        (B, M, d)
    α_t = softmax(x_t Wᵀ / √d)                            (B, T, M)
    y_t = x_t + α_t W   for valid frames, y_t = x_t for masked ones.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scenellm.model.codebook import squared_distances
from scenellm.model.sinkhorn import sinkhorn_fp32


def code_histogram(indices: torch.Tensor, num_codes: int, smoothing: float) -> torch.Tensor:
    """Smoothed, normalised code-usage histogram per video.

    h_bk = (#{l : indices_bl = k} + smoothing) / Σ_k' (#{...k'} + smoothing)

    Args:
        indices: (B, L) long code ids in [0, num_codes), -1 marks padding.
        num_codes: K, the codebook size.
        smoothing: pseudo-count added to every code (>= 0).

    Returns:
        (B, K) float32 histogram, each row summing to 1.
    """
    if indices.dim() != 2 or indices.dtype != torch.long:
        raise ValueError(f"indices must be (B, L) long, got {tuple(indices.shape)} {indices.dtype}")
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    if indices.numel() and ((indices < -1) | (indices >= num_codes)).any():
        raise ValueError(f"indices must lie in [0, {num_codes}) or be -1 (padding)")
    valid = indices >= 0
    counts = torch.zeros(indices.shape[0], num_codes, device=indices.device)
    counts.scatter_add_(1, indices.clamp_min(0), valid.float())  # (B, K)
    counts = counts + smoothing
    total = counts.sum(dim=1, keepdim=True)  # (B, 1)
    if (total <= 0).any():
        raise ValueError("a video has no codes and smoothing is 0: its histogram is empty")
    return counts / total


class OTAggregator(nn.Module):
    """Transport the video's code histogram onto M scene words and re-express frames in them.

    Args:
        code_dim: D, width of the VQ codebook vectors.
        token_dim: d, width of the per-frame tokens.
        num_scene_tokens: M, number of scene words (anchors).
        epsilon: entropic regularisation on the max-normalised cost.
        max_iter, tol: Sinkhorn iteration budget and stopping threshold.
        smoothing: pseudo-count of ``code_histogram``.
    """

    def __init__(
        self,
        code_dim: int,
        token_dim: int,
        num_scene_tokens: int,
        epsilon: float = 0.05,
        max_iter: int = 100,
        tol: float = 1e-6,
        smoothing: float = 1e-3,
    ) -> None:
        super().__init__()
        if num_scene_tokens < 1:
            raise ValueError(f"num_scene_tokens must be >= 1, got {num_scene_tokens}")
        self.epsilon, self.max_iter, self.tol = epsilon, max_iter, tol
        self.smoothing = smoothing
        self.anchors = nn.Parameter(torch.randn(num_scene_tokens, code_dim))  # Z (M, D)
        self.project = nn.Linear(code_dim, token_dim)

    def code_histogram(self, indices: torch.Tensor, num_codes: int) -> torch.Tensor:
        """(B, L) code ids with -1 padding → (B, K) histogram, smoothed by ``self.smoothing``."""
        return code_histogram(indices, num_codes, self.smoothing)

    def forward(
        self,
        frame_tokens: torch.Tensor,
        frame_mask: torch.Tensor,
        histogram: torch.Tensor,
        codebook: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: frame_tokens (B, T, d), frame_mask (B, T) bool (True = real frame),
        histogram (B, K), codebook (K, D).

        Returns: scene_tokens (B, T, d) and info with 'plan' (B, K, M), 'scene_words'
        (B, M, D), 'attention' (B, T, M) and 'converged' (B,) bool.
        """
        batch, num_codes = histogram.shape
        if codebook.dim() != 2 or codebook.shape[0] != num_codes:
            raise ValueError(f"codebook must be (K={num_codes}, D), got {tuple(codebook.shape)}")
        if frame_mask.shape != frame_tokens.shape[:2]:
            raise ValueError(
                f"frame_mask {tuple(frame_mask.shape)} must match frame_tokens "
                f"{tuple(frame_tokens.shape[:2])}"
            )
        # OT in at least float32, autocast off: the potentials are large for small ε.
        with torch.autocast(codebook.device.type, enabled=False):
            dtype = torch.promote_types(codebook.dtype, torch.float32)
            codes, anchors = codebook.to(dtype), self.anchors.to(dtype)
            cost = squared_distances(codes, anchors).clamp_min(0.0)  # (K, M); clamp: rounding
            # One cost for the whole batch, so its max is every video's max.
            cost = cost / cost.detach().max().clamp_min(torch.finfo(dtype).tiny)
            num_words = anchors.shape[0]
            plan, converged = sinkhorn_fp32(
                cost.expand(batch, -1, -1),  # (B, K, M): one cost, one histogram per video
                histogram.to(dtype),
                torch.full((batch, num_words), 1.0 / num_words, dtype=dtype, device=cost.device),
                self.epsilon,
                max_iter=self.max_iter,
                tol=self.tol,
            )
            mass = plan.sum(dim=1).clamp_min(torch.finfo(dtype).tiny)  # (B, M)
            scene_words = plan.transpose(1, 2) @ codes / mass[..., None]  # (B, M, D)
        words = self.project(scene_words.to(self.project.weight.dtype))  # (B, M, d)
        scores = frame_tokens @ words.transpose(1, 2) / math.sqrt(words.shape[-1])  # (B, T, M)
        attention = scores.softmax(dim=-1)
        expressed = frame_tokens + attention @ words  # (B, T, d)
        scene_tokens = torch.where(frame_mask[..., None], expressed, frame_tokens)
        info = {"plan": plan, "scene_words": scene_words, "attention": attention,
                "converged": converged}
        return scene_tokens, info
