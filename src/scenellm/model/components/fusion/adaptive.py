"""``adaptive``: VEGA-3D's token-level adaptive gated fusion ("Generation Models Know Space:
Unleashing Implicit 3D Priors for Scene Understanding"), mixing a second stream into the
semantic tokens with a learned gate per token and channel.

The semantic token of a pair is SceneLLM's fused feature s = α q + (1 − α) d (``gate``);
the second stream is the pair's box geometry and motion m (:mod:`.motion`) in place of
VEGA-3D's video-diffusion features (out of scope offline). With e = MLP(m) (P, d):

    g = σ(W_g [s ; e] + b_g)        (P, d), each pair's gate from that pair alone
    fused = s + g ⊙ e

b_g starts at ``gate_init_bias`` (σ(−2) ≈ 0.12: the stream enters gently). Ours to choose:
the residual form and the motion stream. :meth:`AdaptiveFusion.diagnostics` reports the
mean, standard deviation and share above ½ of the gate values seen since the last reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from scenellm.model.components.fusion.gate import GateFusion, GateFusionConfig
from scenellm.model.components.fusion.motion import MOTION_DIM, Tracks, pair_motion
from scenellm.model.components.registry import option


@dataclass
class AdaptiveFusionConfig:
    gate_init_bias: float = option(-2.0, "Initial gate bias b_g (σ(b_g) is the start gate).")
    stream_hidden: int = option(64, "Hidden width of the motion-stream MLP.")


class AdaptiveFusion(nn.Module):
    def __init__(self, config: AdaptiveFusionConfig, d_model: int, gate_alpha: float,
                 learn_gate: bool = False) -> None:
        super().__init__()
        self.base = GateFusion(GateFusionConfig(), d_model, gate_alpha, learn_gate)
        self.stream = nn.Sequential(nn.Linear(MOTION_DIM, config.stream_hidden), nn.ReLU(),
                                    nn.Linear(config.stream_hidden, d_model))
        self.gate = nn.Linear(2 * d_model, d_model)
        nn.init.constant_(self.gate.bias, config.gate_init_bias)
        self.register_buffer("gate_stats", torch.zeros(4, dtype=torch.float64),
                             persistent=False)  # count, Σg, Σg², #(g > ½)

    def mix(self, semantic: torch.Tensor, stream: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
        """(s (P, d), e (P, d)) → (s + g ⊙ e, g)."""
        g = torch.sigmoid(self.gate(torch.cat([semantic, stream], dim=-1)))  # (P, d)
        return semantic + g * stream, g

    def forward(self, query: torch.Tensor, decoded: torch.Tensor | None,
                motion: tuple[torch.Tensor, torch.Tensor, Tracks | None] | None = None
                ) -> torch.Tensor:
        """query, decoded as ``gate``; motion = (boxes (N, 4), pair_idx (P, 2), tracks)."""
        semantic = self.base(query, decoded)
        if motion is None:
            raise ValueError("the adaptive fusion needs the pairs' boxes (motion=...)")
        m = pair_motion(*motion).to(semantic.dtype)  # (P, 44)
        fused, g = self.mix(semantic, self.stream(m))
        with torch.no_grad():
            g64 = g.detach().double()
            self.gate_stats += torch.stack([g64.new_tensor(g64.numel()), g64.sum(),
                                            (g64 ** 2).sum(), (g64 > 0.5).sum().double()])
        return fused

    def diagnostics(self) -> dict[str, float]:
        n, total, squares, above = self.gate_stats.tolist()
        if n == 0:
            return {}
        mean = total / n
        return {"fusion_gate_mean": mean,
                "fusion_gate_std": max(squares / n - mean ** 2, 0.0) ** 0.5,
                "fusion_gate_above_half": above / n}

    def reset_diagnostics(self) -> None:
        self.gate_stats.zero_()
