"""Predicate heads: fused pair features (P, d_model) → ``attention_logits`` (P, 3),
``spatial_logits`` (P, 6), ``contacting_logits`` (P, 17), and optionally ``aux_loss`` (a
weighted scalar the training loss adds)."""

from scenellm.model.components.heads.mlp import LinearHeads, LinearHeadsConfig
from scenellm.model.components.heads.moe import MoEConfig, MoEHeads
from scenellm.model.components.registry import Registry

HEADS = Registry("head")
HEADS.register("mlp", LinearHeads, LinearHeadsConfig)
HEADS.register("moe", MoEHeads, MoEConfig)
