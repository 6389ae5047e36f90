"""``mlp``: SceneLLM's predicate heads, one linear layer per predicate kind."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from scenellm.data.vocab import ATTENTION, CONTACTING, SPATIAL


@dataclass
class LinearHeadsConfig:
    """No options: three linear layers on the fused pair feature."""


class LinearHeads(nn.Module):
    def __init__(self, config: LinearHeadsConfig, d_model: int) -> None:
        super().__init__()
        self.attention_head = nn.Linear(d_model, len(ATTENTION))
        self.spatial_head = nn.Linear(d_model, len(SPATIAL))
        self.contacting_head = nn.Linear(d_model, len(CONTACTING))

    def forward(self, fused: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"attention_logits": self.attention_head(fused),
                "spatial_logits": self.spatial_head(fused),
                "contacting_logits": self.contacting_head(fused)}
