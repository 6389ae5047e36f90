"""OT temporal aggregation over the sequence of frame tokens (``ot.source=frames``).

The paper (arXiv 2412.11026, §3.3) applies OT "to transport semantic information from
different frame-level tokens to equip the generated implicit linguistic signal with temporal
information", redistributing the codebook into a smaller, temporally consistent codebook C⁺
onto which frames are re-tokenised. Our reading, per video with T frame tokens x_t (the SIA
outputs, in order) and M learnable anchors Z (M, d):

    Ĉ_tm = ‖x_t - Z_m‖² / max_tm ‖x_t - Z_m‖²            (max detached, per video)
    P = sinkhorn(Ĉ, a = 1/T over real frames, b = 1/M, ε)  (B, T, M), fp32 or wider
    C⁺_m = Σ_t P_tm x_t / Σ_t P_tm                         (B, M, d): the video's codebook
    k(t) = argmax_m P_tm                                   the frame's word in C⁺
    y_t = x_t + W C⁺_k(t)                                   (B, T, d)

Each word of C⁺ mixes the frames that transport onto it, so what a frame becomes depends on
the other frames of its video; k(t) is the discrete implicit-language token of frame t (the
hard choice passes no gradient; the word's vector does). Padding frames carry no mass and
keep their token.
"""

from __future__ import annotations

import torch
from torch import nn

from scenellm.model.codebook import squared_distances
from scenellm.model.sinkhorn import sinkhorn_fp32


class FrameOTAggregator(nn.Module):
    """Transport a video's frame tokens onto M anchors; re-tokenise frames onto C⁺.

    Args:
        token_dim: d, width of the frame tokens.
        num_scene_tokens: M, size of the aggregated codebook C⁺.
        epsilon: entropic regularisation on the max-normalised cost.
        max_iter, tol: Sinkhorn iteration budget and stopping threshold.
    """

    def __init__(self, token_dim: int, num_scene_tokens: int, epsilon: float = 0.05,
                 max_iter: int = 100, tol: float = 1e-6) -> None:
        super().__init__()
        if num_scene_tokens < 1:
            raise ValueError(f"num_scene_tokens must be >= 1, got {num_scene_tokens}")
        self.epsilon, self.max_iter, self.tol = epsilon, max_iter, tol
        self.anchors = nn.Parameter(torch.randn(num_scene_tokens, token_dim) * 0.1)  # Z
        self.project = nn.Linear(token_dim, token_dim)

    def forward(self, frame_tokens: torch.Tensor, frame_mask: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """frame_tokens (B, T, d), frame_mask (B, T) bool → tokens (B, T, d) and info with
        'plan' (B, T, M), 'scene_words' (B, M, d), 'words' (B, T) long, 'converged' (B,)."""
        if frame_mask.shape != frame_tokens.shape[:2]:
            raise ValueError(f"frame_mask {tuple(frame_mask.shape)} must match frame_tokens "
                             f"{tuple(frame_tokens.shape[:2])}")
        batch, _, _ = frame_tokens.shape
        with torch.autocast(frame_tokens.device.type, enabled=False):  # OT in fp32 or wider
            dtype = torch.promote_types(frame_tokens.dtype, torch.float32)
            x, anchors = frame_tokens.to(dtype), self.anchors.to(dtype)
            cost = squared_distances(x.reshape(-1, x.shape[-1]), anchors).clamp_min(0.0)
            cost = cost.reshape(batch, -1, anchors.shape[0])  # (B, T, M)
            scale = cost.detach().amax(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(dtype).tiny)
            cost = cost / scale
            frames = frame_mask.to(dtype)
            a = frames / frames.sum(dim=1, keepdim=True).clamp_min(1.0)  # (B, T)
            b = torch.full((batch, anchors.shape[0]), 1.0 / anchors.shape[0], dtype=dtype,
                           device=x.device)
            plan, converged = sinkhorn_fp32(cost, a, b, self.epsilon, max_iter=self.max_iter,
                                            tol=self.tol)
            mass = plan.sum(dim=1).clamp_min(torch.finfo(dtype).tiny)  # (B, M)
            scene_words = plan.transpose(1, 2) @ x / mass[..., None]  # (B, M, d)
            words = plan.argmax(dim=-1)  # (B, T)
            chosen = torch.gather(scene_words, 1, words[..., None].expand(-1, -1, x.shape[-1]))
        out = frame_tokens + self.project(chosen.to(self.project.weight.dtype))
        out = torch.where(frame_mask[..., None], out, frame_tokens)
        return out, {"plan": plan, "scene_words": scene_words, "words": words,
                     "converged": converged}
