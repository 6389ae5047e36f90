"""``"small_cnn"``: a small detector backbone trained from scratch on object crops.

Body: four 3×3 conv blocks (conv → GroupNorm → ReLU) with strides 2, 2, 2, 1, so the feature
map has stride 8 and ``channels[-1]`` channels. Object feature of a box (the vector cached
for the VQ-VAE):

    f = ReLU(W · flatten(RoIAlign_{s×s}(body(x), box)) + b)    ∈ R^F  (F = feature_dim)

i.e. the penultimate layer of the object classifier ``logits = W_cls f + b_cls``, which is
trained on ground-truth boxes and STTran class ids (``train_on_crops``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scenellm.features.backbone import DetectorBackbone, load_state_dict_file, register_backbone

# ImageNet statistics: inputs arrive in [0, 1]
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(images (B, 3, H, W) uint8 or float in [0, 1], rois (R, 5), labels (R,) class ids)."""
BatchSource = Callable[[int], Iterable[Batch]]
"""``source(epoch)`` yields that epoch's batches; the stage can stream frames from disk."""


def _as_unit_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


class SmallCNN(DetectorBackbone):
    """Stride-8 CNN with an object-classification head on RoI-pooled features."""

    stride = 8

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128, 128),
        feature_dim: int = 256,
        num_classes: int = 37,
        pooled_size: int = 7,
        seed: int = 0,
    ):
        super().__init__()
        self.out_channels = channels[-1]
        self.feature_dim = feature_dim
        self.pooled_size = pooled_size
        with torch.random.fork_rng(devices=[]):  # same seed → same weights, global RNG untouched
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            for i, (c_in, c_out) in enumerate(zip((3, *channels[:-1]), channels, strict=True)):
                stride = 2 if i < 3 else 1
                layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(8, c_out), nn.ReLU()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(channels[-1] * pooled_size**2, feature_dim)
            self.classifier = nn.Linear(feature_dim, num_classes)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SmallCNN:
        """Keys: channels, feature_dim, num_classes, pooled_size, seed, checkpoint (optional:
        a state_dict saved after ``train_on_crops``, loaded strictly)."""
        keys = ("channels", "feature_dim", "num_classes", "pooled_size", "seed")
        model = cls(**{k: config[k] for k in keys if k in config})
        if config.get("checkpoint"):
            model.load_state_dict(load_state_dict_file(config["checkpoint"]))
        return model.eval()

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - self.mean) / self.std)  # (B, C, H/8, W/8)

    def box_head(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.relu(self.head(pooled.flatten(1)))  # (R, C·s·s) → (R, F)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """RoI-pooled features (R, C, s, s) → class logits (R, num_classes)."""
        return self.classifier(self.box_head(pooled))

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, int, int]:
        """Cross-entropy, number of correct predictions, number of RoIs of one batch."""
        device = self.mean.device
        images, rois, labels = batch
        images, rois = _as_unit_float(images).to(device), rois.to(device).float()
        labels = labels.to(device).long()
        logits = self.classify(self.pool(self.feature_map(images), rois))
        correct = int((logits.argmax(1) == labels).sum())
        return F.cross_entropy(logits, labels), correct, len(labels)

    def _run_epoch(
        self, batches: Iterable[Batch], optimizer: torch.optim.Optimizer | None = None
    ) -> dict[str, float]:
        """One pass over ``batches``, stepping ``optimizer`` after each batch when given."""
        total_loss, total_correct, total = 0.0, 0, 0
        for batch in batches:
            loss, correct, n = self._loss(batch)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            total_loss += loss.item() * n
            total_correct += correct
            total += n
        return {
            "loss": total_loss / max(total, 1),
            "accuracy": total_correct / max(total, 1),
            "num_rois": total,
        }

    def train_on_crops(
        self,
        batches: BatchSource,
        epochs: int,
        lr: float,
        weight_decay: float = 1e-4,
        progress: Callable[[dict[str, float]], None] | None = None,
    ) -> list[dict[str, float]]:
        """Train body, head and classifier with AdamW on cross-entropy over object boxes.

        ``batches(epoch)`` yields ``(images, rois, labels)``; its order is the only
        randomness (see ``crop_batches``), so equal seeds give equal weights on CPU.
        Returns one record per epoch ``{epoch, loss, accuracy, num_rois}`` (training-set
        running values), also passed to ``progress``. Leaves the model in eval mode.
        """
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)
        history = []
        self.train()
        for epoch in range(epochs):
            record = {"epoch": epoch, **self._run_epoch(batches(epoch), optimizer)}
            history.append(record)
            if progress is not None:
                progress(record)
        self.eval()
        return history

    @torch.no_grad()
    def evaluate_on_crops(self, batches: Iterable[Batch]) -> dict[str, float]:
        """Mean cross-entropy, accuracy and RoI count of the classifier over ``batches``."""
        return self._run_epoch(batches)


def crop_batches(
    images: torch.Tensor, rois: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int
) -> BatchSource:
    """A ``BatchSource`` over in-memory images (N, 3, H, W), rois (R, 5) indexing N, labels (R,).

    Epoch ``e`` shuffles the images with a generator seeded from ``(seed, e)`` and yields
    ``batch_size`` images at a time with their RoIs, batch indices renumbered.
    """

    def source(epoch: int) -> Iterable[Batch]:
        # SeedSequence mixes (seed, epoch) into independent streams, in any epoch order
        epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch_seed))
        for chunk in order.split(batch_size):
            position = torch.full((len(images),), -1, dtype=torch.long)
            position[chunk] = torch.arange(len(chunk))
            keep = position[rois[:, 0].long()] >= 0
            batch_rois = rois[keep].clone()
            batch_rois[:, 0] = position[batch_rois[:, 0].long()].to(rois.dtype)
            yield images[chunk], batch_rois, labels[keep]

    return source


register_backbone("small_cnn")(SmallCNN.from_config)
