"""``sia``: SceneLLM's own Spatial Information Aggregation (:mod:`scenellm.model.sia`) in the
spatial slot, with the same parameters and initialisation as before the slot existed."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scenellm.model.components.registry import option
from scenellm.model.sia import SpatialAggregator


@dataclass
class SIAConfig:
    max_groups: int = option(3, "Most groups a frame is clustered into (model.sia_groups).")
    gcn_layers: int = option(2, "Graph convolutions over the objects → groups → frame tree.")
    distance_threshold: float = option(0.25, "Dendrogram cut of the box clustering.")


class SIA(SpatialAggregator):
    reads_text = False

    def __init__(self, config: SIAConfig, token_dim: int, out_dim: int) -> None:
        super().__init__(token_dim=token_dim, hidden_dim=out_dim, out_dim=out_dim,
                         gcn_layers=config.gcn_layers, max_groups=config.max_groups,
                         distance_threshold=config.distance_threshold)

    def forward(self, obj_tokens, boxes, frame_of_obj, num_frames, return_objects=False,
                text: torch.Tensor | None = None):
        """See :meth:`SpatialAggregator.forward`; SIA reads no text."""
        return super().forward(obj_tokens, boxes, frame_of_obj, num_frames, return_objects)
