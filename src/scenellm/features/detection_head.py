"""A centre-point detection head on the detector backbone's feature map (SGDET's boxes).

CenterNet's formulation (Zhou et al., "Objects as Points", 2019) on the stride-s map of
:class:`~scenellm.features.backbone.DetectorBackbone`: per class a heat map of object
centres, and per cell the box size and the sub-cell offset of the centre.

Targets, for a ground-truth box b = (x1, y1, x2, y2) of class c (STTran id c + 1):

    centre  p = ((x1 + x2) / 2, (y1 + y2) / 2) / s,   cell q = ⌊p⌋
    Y_c(u, v) = max over boxes of c of exp(−(u − q_x)² / 2σ_x² − (v − q_y)² / 2σ_y²),
    σ = max(0.5, (w, h) / (6 s))              (an elliptical Gaussian, TTFNet's choice)
    size  = log(w, h) at q,   offset = p − q at q

Losses: CenterNet's focal loss on the heat (α = 2, β = 4) normalised by the number of
boxes, plus L1 on size and offset at the box cells. The head is three dilated 3×3
convolutions (dilation 1, 2, 4: the receptive field grows to the size of the largest
objects on a small map) and three 1×1 outputs; the heat bias starts at −2.19
(prior 0.1), as in CenterNet.

Decoding: a 3×3 max-pool keeps local peaks of sigmoid(heat); the ``k`` best (cell, class)
peaks become boxes ``(q + offset) · s ± exp(size) / 2``, clipped to the image and at least
one pixel wide and high.

The backbone is not trained here: the features stage trained it, and its RoI features are
what the model reads, so detected boxes are described in the same feature space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scenellm.data.detections import FrameDetections

HEAT_PRIOR = 0.1
HEAD_FILE, HEAD_CONFIG = "head.safetensors", "head.json"  # a trained head, as saved


class CenterHead(nn.Module):
    """Heat (B, C, h, w), log size (B, 2, h, w) and offset (B, 2, h, w) from a feature map."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 64, seed: int = 0):
        super().__init__()
        self.num_classes = num_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            c_in = in_channels
            for dilation in (1, 2, 4):
                layers += [nn.Conv2d(c_in, hidden, 3, padding=dilation, dilation=dilation),
                           nn.ReLU()]
                c_in = hidden
            self.body = nn.Sequential(*layers)
            self.heat = nn.Conv2d(hidden, num_classes, 1)
            self.size = nn.Conv2d(hidden, 2, 1)
            self.offset = nn.Conv2d(hidden, 2, 1)
        nn.init.constant_(self.heat.bias, -math.log((1 - HEAT_PRIOR) / HEAT_PRIOR))

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.body(fmap)
        return self.heat(x), self.size(x), self.offset(x)


@dataclass(frozen=True)
class Targets:
    heat: torch.Tensor  # (B, C, h, w) in [0, 1], 1 exactly at box cells
    index: torch.Tensor  # (M,) flat cell index b·h·w + y·w + x of each box
    size: torch.Tensor  # (M, 2) log(w, h)
    offset: torch.Tensor  # (M, 2) centre − cell, in cells


def make_targets(boxes: list[np.ndarray], labels: list[np.ndarray], map_size: tuple[int, int],
                 stride: int, num_classes: int) -> Targets:
    """Targets of a batch from each frame's boxes (k, 4) and STTran ids (k,) (module doc)."""
    h, w = map_size
    heat = np.zeros((len(boxes), num_classes, h, w), np.float32)
    index, size, offset = [], [], []
    vs, us = np.mgrid[0:h, 0:w]
    for b, (frame_boxes, frame_labels) in enumerate(zip(boxes, labels, strict=True)):
        for box, label in zip(frame_boxes, frame_labels, strict=True):
            bw, bh = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]) / stride
            qx = int(min(max(np.floor(centre[0]), 0), w - 1))
            qy = int(min(max(np.floor(centre[1]), 0), h - 1))
            sx, sy = max(0.5, bw / (6 * stride)), max(0.5, bh / (6 * stride))
            blob = np.exp(-((us - qx) ** 2) / (2 * sx**2) - ((vs - qy) ** 2) / (2 * sy**2))
            c = int(label) - 1
            np.maximum(heat[b, c], blob, out=heat[b, c])
            heat[b, c, qy, qx] = 1.0
            index.append(b * h * w + qy * w + qx)
            size.append([math.log(bw), math.log(bh)])
            offset.append([centre[0] - qx, centre[1] - qy])
    return Targets(torch.from_numpy(heat), torch.tensor(index, dtype=torch.long),
                   torch.tensor(size, dtype=torch.float32).reshape(-1, 2),
                   torch.tensor(offset, dtype=torch.float32).reshape(-1, 2))


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
               beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed over cells, divided by the number of
    positive cells (at least 1)."""
    p = logits.sigmoid().clamp(1e-6, 1 - 1e-6)
    positive = target.eq(1).float()
    pos = positive * (1 - p) ** alpha * torch.log(p)
    neg = (1 - positive) * (1 - target) ** beta * p**alpha * torch.log(1 - p)
    return -(pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def head_loss(outputs: tuple[torch.Tensor, ...], targets: Targets) -> dict[str, torch.Tensor]:
    heat, size, offset = outputs
    device = heat.device

    def at_cells(t: torch.Tensor) -> torch.Tensor:  # (B, 2, h, w) → (M, 2)
        return t.permute(0, 2, 3, 1).reshape(-1, 2)[targets.index.to(device)]

    focal = focal_loss(heat, targets.heat.to(device))
    if len(targets.index):
        size_l1 = F.l1_loss(at_cells(size), targets.size.to(device))
        offset_l1 = F.l1_loss(at_cells(offset), targets.offset.to(device))
    else:
        size_l1 = offset_l1 = heat.sum() * 0
    return {"loss": focal + 0.5 * size_l1 + offset_l1, "focal": focal, "size": size_l1,
            "offset": offset_l1}


@torch.no_grad()
def decode(outputs: tuple[torch.Tensor, ...], stride: int, image_size: tuple[int, int],
           k: int) -> list[FrameDetections]:
    """The ``k`` best peaks of each frame as boxes (module docstring); labels are STTran ids."""
    heat, size, offset = outputs
    scores = heat.float().sigmoid()
    peaks = scores * (F.max_pool2d(scores, 3, stride=1, padding=1) == scores)
    batch, classes, h, w = peaks.shape
    top, flat = peaks.reshape(batch, -1).topk(min(k, classes * h * w), dim=1)
    cls, cell = flat // (h * w), flat % (h * w)
    ys, xs = (cell // w).float(), (cell % w).float()
    gather = lambda t: t.float().reshape(batch, 2, h * w).gather(  # noqa: E731
        2, cell[:, None, :].expand(-1, 2, -1))
    off, wh = gather(offset), gather(size).exp()
    cx, cy = (xs + off[:, 0]) * stride, (ys + off[:, 1]) * stride
    width, height = image_size
    # clipped to the image, and at least one pixel wide and high: a peak at the border with
    # a tiny size would otherwise collapse to x2 = x1
    x1 = (cx - wh[:, 0] / 2).clamp(0, width - 2)
    y1 = (cy - wh[:, 1] / 2).clamp(0, height - 2)
    x2 = torch.maximum((cx + wh[:, 0] / 2).clamp(0, width - 1), x1 + 1)
    y2 = torch.maximum((cy + wh[:, 1] / 2).clamp(0, height - 1), y1 + 1)
    boxes = torch.stack([x1, y1, x2, y2], dim=-1)
    return [FrameDetections(boxes[b].cpu().numpy().astype(np.float32),
                            (cls[b] + 1).cpu().numpy().astype(np.int64),
                            top[b].cpu().numpy().astype(np.float32)) for b in range(batch)]


def scene_nodes(found: FrameDetections, person_id: int, budget: int,
                min_score: float) -> FrameDetections:
    """A frame's scene-graph nodes from its detections (best first): the best person (AG
    frames hold one person; it is kept even below ``min_score``, so a frame keeps its
    subject), then up to ``budget`` other detections scoring at least ``min_score``. A frame
    whose detections hold no person has no nodes: no pair can be formed."""
    is_person = found.labels == person_id
    if not is_person.any():
        rows = np.zeros(0, np.int64)
    else:
        others = np.flatnonzero(~is_person & (found.scores >= min_score))[:budget]
        rows = np.concatenate([np.flatnonzero(is_person)[:1], others])
    return FrameDetections(found.boxes[rows].reshape(-1, 4), found.labels[rows],
                           found.scores[rows])


PEAKS = 100  # peaks decoded per frame before scene_nodes applies the budget


@torch.no_grad()
def detect_nodes(backbone, head: CenterHead, data_root, frames, device, batch_size: int,
                 budget: int, min_score: float, person_id: int) -> list[FrameDetections]:
    """SGDET's nodes (:func:`scene_nodes`) of each row of ``frames`` (frame keys, sizes), in
    order: the backbone's map, the head's ``PEAKS`` best peaks, then the budget."""
    from scenellm.features.frames import load_frame, stack_frames

    keys = frames["frame_key"].tolist()
    size = (int(frames["width"].iloc[0]), int(frames["height"].iloc[0]))
    nodes = []
    for start in range(0, len(keys), batch_size):
        images = stack_frames([load_frame(data_root, k) for k in keys[start:start + batch_size]])
        found = decode(head(backbone.feature_map(images.to(device)).float()), backbone.stride,
                       size, PEAKS)
        nodes += [scene_nodes(f, person_id, budget, min_score) for f in found]
    return nodes


def load_head(folder, device) -> tuple[CenterHead, dict]:
    """A saved head (``head.safetensors`` and its ``head.json``: sizes and the node rule)."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / HEAD_CONFIG).read_text())
    head = CenterHead(config["in_channels"], config["num_classes"], config["hidden"])
    head.load_state_dict(load_file(folder / HEAD_FILE))
    return head.to(device).eval(), config


def detected_shard(backbone, data_root, frames, found: list[FrameDetections], device,
                   batch_size: int, person_id: int) -> tuple[dict, dict]:
    """One video's feature shard over its detected nodes (``box_source`` "proposals"; the
    person has object index 0, every other node -1)."""
    from scenellm.features.frames import nodes_shard

    nodes = [(n.boxes, n.labels, np.where(n.labels == person_id, 0, -1), n.scores)
             for n in found]
    return nodes_shard(backbone, data_root, frames, nodes, device, batch_size, "proposals")
