"""Detector features: RoIAlign, backbones, and the per-video FeatureStore.

Names are imported lazily (PEP 562) so ``import scenellm.features`` does not import torch.
``roi_align`` is not re-exported: the submodule of that name would shadow it here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DetectorBackbone": "scenellm.features.backbone",
    "build_backbone": "scenellm.features.backbone",
    "backbone_names": "scenellm.features.backbone",
    "SmallCNN": "scenellm.features.backbone_small_cnn",
    "crop_batches": "scenellm.features.backbone_small_cnn",
    "ResNetBackbone": "scenellm.features.backbone_resnet",
    "FeatureStore": "scenellm.features.store",
    "ShardView": "scenellm.features.shard",
    "shard_entry": "scenellm.features.shard",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scenellm.features' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
