"""``gate``: SceneLLM's gated fusion of pair query and decoded LLM context,

    fused = α · query + (1 − α) · decoded        (paper: α = 0.5, ``model.gate_alpha``)

or, with ``learn_gate``, α = σ(W [query ; decoded] + b) per pair and channel, starting at α.
Without context the query passes unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class GateFusionConfig:
    """No options: α is ``model.gate_alpha``."""


class GateFusion(nn.Module):
    def __init__(self, config: GateFusionConfig, d_model: int, gate_alpha: float,
                 learn_gate: bool = False) -> None:
        super().__init__()
        self.gate_alpha = gate_alpha
        self.gate = nn.Linear(2 * d_model, d_model) if learn_gate else None
        if self.gate is not None:
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, math.log(gate_alpha / (1 - gate_alpha)))

    def forward(self, query: torch.Tensor, decoded: torch.Tensor | None,
                motion=None) -> torch.Tensor:
        """query (P, d), decoded (P, d) or None → (P, d); ``motion`` is not read."""
        if decoded is None:
            return query
        if self.gate is None:
            alpha = self.gate_alpha
        else:
            alpha = torch.sigmoid(self.gate(torch.cat([query, decoded], dim=-1)))
        return alpha * query + (1 - alpha) * decoded
