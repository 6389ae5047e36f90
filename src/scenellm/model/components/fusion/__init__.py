"""Fusions: pair query (P, d), decoded LLM context (P, d) or None, and the pairs' boxes over
time → fused pair features (P, d) for the predicate heads."""

from scenellm.model.components.fusion.adaptive import AdaptiveFusion, AdaptiveFusionConfig
from scenellm.model.components.fusion.gate import GateFusion, GateFusionConfig
from scenellm.model.components.registry import Registry

FUSIONS = Registry("fusion")
FUSIONS.register("gate", GateFusion, GateFusionConfig)
FUSIONS.register("adaptive", AdaptiveFusion, AdaptiveFusionConfig)
