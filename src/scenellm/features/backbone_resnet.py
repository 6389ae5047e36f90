"""``"resnet"``: a frozen ResNet (He et al., arXiv 1512.03385) in Faster R-CNN's C4 layout.

Written in plain torch with torchvision's module names (``conv1``, ``bn1``, ``layer1.0.conv2``,
``layer2.0.downsample.0`` …), so a torchvision ImageNet checkpoint (``resnet50-*.pth``,
``resnet18-*.pth``) loads directly; its ``fc.*`` keys are reported as unexpected and unused.
Stride on the 3×3 conv of a bottleneck (torchvision's "ResNet v1.5").

- feature map: stem → layer1 → layer2 → layer3, stride 16, 256·e channels
  (e = 4 for bottleneck depths 50/101, 1 for 18/34);
- object feature (C4 box head): RoIAlign 14×14 on layer3 → layer4 (stride 2 → 7×7) →
  global average pool, a 512·e vector (2048 for ResNet-50, 512 for ResNet-18).

The backbone is frozen: parameters do not require grad and BatchNorm always uses the
checkpoint's running statistics.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from scenellm.features.backbone import DetectorBackbone, load_state_dict_file, register_backbone

logger = logging.getLogger(__name__)

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(c_in, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (strided) → 1×1 expand ×4, with a residual (ResNet-50/101)."""

    expansion = 4

    def __init__(
        self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1, self.bn1 = _conv1x1(c_in, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = _conv1x1(planes, planes * 4), nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNetBackbone(DetectorBackbone):
    """ResNet-{18,34,50,101}: layer3 map (stride 16), layer4 + avg-pool box head."""

    stride = 16
    pooled_size = 14

    def __init__(self, depth: int = 50, seed: int = 0):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"detector.depth must be one of {sorted(_DEPTHS)}, got {depth}")
        block, counts = _DEPTHS[depth]
        self._c_in = 64
        with torch.random.fork_rng(devices=[]):  # seeded init; a checkpoint overwrites it
            torch.manual_seed(seed)
            self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
            self.layer1 = self._make_layer(block, 64, counts[0], 1)
            self.layer2 = self._make_layer(block, 128, counts[1], 2)
            self.layer3 = self._make_layer(block, 256, counts[2], 2)
            self.layer4 = self._make_layer(block, 512, counts[3], 2)
        self.out_channels = 256 * block.expansion
        self.load_report: dict[str, list[str]] = {"missing": [], "unexpected": []}
        self.feature_dim = 512 * block.expansion
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _make_layer(self, block, planes: int, count: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._c_in != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._c_in, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self._c_in, planes, stride, downsample)]
        self._c_in = planes * block.expansion
        layers += [block(self._c_in, planes) for _ in range(1, count)]
        return nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ResNetBackbone:
        """Keys: depth (18/34/50/101, default 50) and checkpoint (required: a torchvision
        ResNet state_dict file)."""
        state = load_state_dict_file(config.get("checkpoint"))
        model = cls(depth=config.get("depth", 50))
        model.load_report = model.load_checkpoint_state(state, str(config["checkpoint"]))
        return model

    def load_checkpoint_state(
        self, state: dict[str, torch.Tensor], source: str
    ) -> dict[str, list[str]]:
        """``load_state_dict(strict=False)``; returns ``{"missing": [...], "unexpected": [...]}``.

        Raises if no parameter of this ResNet is found (the wrong kind of file).
        """
        if not set(state) & set(self.state_dict()):
            raise ValueError(
                f"detector.checkpoint: {source} holds none of the ResNet parameter names "
                f"(e.g. 'layer1.0.conv1.weight'); give a torchvision ResNet state_dict"
            )
        result = self.load_state_dict(state, strict=False)
        report = {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys)}
        if report["missing"]:
            logger.warning(
                "%s: %d ResNet parameters missing, left at random init: %s",
                source,
                len(report["missing"]),
                report["missing"][:5],
            )
        return report

    def train(self, mode: bool = True) -> ResNetBackbone:
        """Frozen backbone: BatchNorm stays in inference mode whatever ``mode`` says."""
        return super().train(False)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1((images - self.mean) / self.std))))
        return self.layer3(self.layer2(self.layer1(x)))  # (B, 256·e, H/16, W/16)

    def box_head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layer4(pooled).mean(
            dim=(2, 3)
        )  # (R, C, 14, 14) → (R, 512·e, 7, 7) → (R, 512·e)


register_backbone("resnet")(ResNetBackbone.from_config)
