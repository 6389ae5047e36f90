"""Detector backbones behind one interface, built by name from the ``detector`` params.

A backbone turns images into a feature map (``feature_map``), and RoIs on that map into one
vector per RoI (``roi_features`` = ``box_head`` ∘ RoIAlign). The caching stage calls
``feature_map`` once per batch of frames and ``roi_features`` for object boxes and for
(person, object) union boxes, so objects and unions share one feature space.

Registered names: ``"small_cnn"`` (``backbone_small_cnn``, trainable on object crops) and ``"resnet"``
(``backbone_resnet``, a frozen torchvision-compatible ResNet).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scenellm.features.roi_align import roi_align

# modules whose import registers more backbones; imported on first build
_BACKBONE_MODULES = ("scenellm.features.backbone_resnet", "scenellm.features.backbone_small_cnn")
_REGISTRY: dict[str, Callable[[dict[str, Any]], DetectorBackbone]] = {}


class DetectorBackbone(nn.Module, ABC):
    """Feature extractor: images (B, 3, H, W) in [0, 1] → map (B, C, H/stride, W/stride).

    Subclasses set ``stride``, ``out_channels`` (C), ``feature_dim`` (F, the length of
    ``roi_features`` vectors) and ``pooled_size`` (s, RoIAlign's output side).
    """

    stride: int
    out_channels: int
    feature_dim: int
    pooled_size: int
    sampling_ratio: int = 2

    @abstractmethod
    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] → (B, C, ⌈H/stride⌉, ⌈W/stride⌉)."""

    @abstractmethod
    def box_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """RoI-pooled features (R, C, s, s) → one vector per RoI (R, F)."""

    def pool(self, fmap: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """RoIAlign (aligned) of ``rois`` (R, 5) ``[batch_idx, x1, y1, x2, y2]`` in image
        pixels from ``fmap`` (B, C, h, w) → (R, C, s, s)."""
        return roi_align(
            fmap, rois, self.pooled_size, 1.0 / self.stride, self.sampling_ratio, aligned=True
        )

    def roi_features(self, fmap: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w), (R, 5) → (R, F)."""
        return self.box_head(self.pool(fmap, rois))

    def forward(self, images: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W), (R, 5) → (R, F)."""
        return self.roi_features(self.feature_map(images), rois)


def register_backbone(
    name: str,
) -> Callable[[Callable[[dict[str, Any]], DetectorBackbone]], Callable[..., DetectorBackbone]]:
    """Decorator: make ``factory(config)`` buildable as ``{"name": name, ...}``."""

    def decorate(factory: Callable[[dict[str, Any]], DetectorBackbone]):
        _REGISTRY[name] = factory
        return factory

    return decorate


def backbone_names() -> list[str]:
    """Names ``build_backbone`` accepts."""
    for module in _BACKBONE_MODULES:
        importlib.import_module(module)
    return sorted(_REGISTRY)


def build_backbone(config: dict[str, Any]) -> DetectorBackbone:
    """Build the backbone named ``config["name"]`` from the ``detector`` params section.

    Each factory reads only its own keys (see ``SmallCNN.from_config`` and
    ``ResNetBackbone.from_config``); keys meant for the stage itself are left alone.
    """
    names = backbone_names()
    name = config.get("name")
    if name not in _REGISTRY:
        raise ValueError(f"detector.name must be one of {names}, got {name!r}")
    return _REGISTRY[name](config)


def load_state_dict_file(path: str | None, field: str = "detector.checkpoint") -> dict:
    """Read a ``torch.save``-d state dict safely (``weights_only=True``).

    Accepts a bare state dict or one wrapped as ``{"state_dict": ...}`` / ``{"model": ...}``.
    """
    if not path:
        raise ValueError(f"{field} is not set; give the path of a saved state_dict (.pth)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{field}: checkpoint file {path} does not exist; fix the path")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"{field}: {path} does not hold a state_dict")
    return state
