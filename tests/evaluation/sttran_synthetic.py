"""Seeded synthetic videos in STTran's evaluator formats, for the tests and the bench.

Each frame has one person and a few objects; the predicted boxes are the ground-truth boxes
jittered (some lightly, some past IoU 0.5), plus spurious boxes; some labels are wrong (never
``person``, so no prediction has a person as its object); some pairs are dropped, and some
frames have no pairs at all. Scores are continuous, so rankings have no ties.
"""

from __future__ import annotations

import numpy as np
import torch

N_OBJECT_IDS = 37  # STTran ids: 0 background, 1 person, 2..36 objects


def _box(rng: np.random.Generator) -> np.ndarray:
    x1, y1 = rng.uniform(0, 400, size=2)
    w, h = rng.uniform(20, 160, size=2)
    return np.array([x1, y1, x1 + w, y1 + h])


def _jitter(rng: np.random.Generator, box: np.ndarray) -> np.ndarray:
    """Move each side by a share of the box size: small (match), medium (near 0.5) or large."""
    size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
    sigma = rng.choice([0.02, 0.12, 0.3])
    out = box + rng.normal(0.0, sigma, size=4) * size
    return np.array(
        [min(out[0], out[2]), min(out[1], out[3]), max(out[0], out[2]), max(out[1], out[3])]
    )


def _labels(rng: np.random.Generator, n_classes: int, lo: int, hi: int) -> torch.Tensor:
    return torch.as_tensor(rng.choice(n_classes, size=rng.integers(lo, hi + 1), replace=False))


def gt_object(rng: np.random.Generator) -> dict:
    """One ground-truth object of STTran's ``gt`` with a random class, box and labels."""
    return {
        "class": int(rng.integers(2, N_OBJECT_IDS)),
        "bbox": _box(rng),
        "attention_relationship": _labels(rng, 3, 1, 1),
        "spatial_relationship": _labels(rng, 6, 1, 2),
        "contacting_relationship": _labels(rng, 17, 1, 3),
    }


def _probabilities(rng: np.random.Generator, size: int, true: torch.Tensor) -> np.ndarray:
    """Sigmoid scores in (0, 1) with a boost on the true labels; some exceed 0.9."""
    logits = rng.normal(-1.0, 1.5, size=size)
    logits[true.numpy()] += 2.5
    return 1.0 / (1.0 + np.exp(-logits))


def synthetic_video(
    rng: np.random.Generator,
    n_frames: int = 20,
    objects: tuple[int, int] = (3, 8),
    p_empty: float = 0.05,
    p_mislabel: float = 0.2,
    shuffle_pairs: bool = False,
) -> tuple[list, dict[str, torch.Tensor]]:
    """One video: ``gt`` (list of frames) and ``pred`` (dict of tensors), STTran formats."""
    gt, boxes, labels, pred_labels, pair_idx, im_idx = [], [], [], [], [], []
    att, spa, con = [], [], []
    for f in range(n_frames):
        person = _box(rng)
        frame = [{"person_bbox": person[None]}]
        person_idx = len(boxes)
        boxes.append([f, *_jitter(rng, person)])
        labels.append(1)
        pred_labels.append(1)
        truths = []
        for _ in range(rng.integers(objects[0], objects[1] + 1)):
            obj = gt_object(rng)
            cls = obj["class"]
            frame.append(obj)
            truths.append(obj)
            boxes.append([f, *_jitter(rng, obj["bbox"])])
            labels.append(cls)
            wrong = rng.random() < p_mislabel
            pred_labels.append(int(rng.integers(2, N_OBJECT_IDS)) if wrong else cls)
        for _ in range(rng.integers(0, 3)):  # spurious detections
            cls = int(rng.integers(2, N_OBJECT_IDS))
            truths.append(None)
            boxes.append([f, *_box(rng)])
            labels.append(cls)
            pred_labels.append(cls)
        gt.append(frame)
        if rng.random() < p_empty:
            continue
        for i, obj in enumerate(truths):
            if rng.random() < 0.1:
                continue
            pair_idx.append([person_idx, person_idx + 1 + i])
            im_idx.append(f)
            none = torch.zeros(0, dtype=torch.long)
            att_true = obj["attention_relationship"] if obj else none
            att_logits = rng.normal(0.0, 1.5, size=3)
            att_logits[att_true.numpy()] += 2.5
            att.append(att_logits)
            spa.append(_probabilities(rng, 6, obj["spatial_relationship"] if obj else none))
            con.append(_probabilities(rng, 17, obj["contacting_relationship"] if obj else none))
    order = rng.permutation(len(im_idx)) if shuffle_pairs else np.arange(len(im_idx))
    n_boxes = len(boxes)

    def rows(x: list, width: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1, width)[order])

    pred = {
        "boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32)),
        "labels": torch.as_tensor(labels),
        "scores": torch.as_tensor(rng.uniform(0.3, 1.0, n_boxes).astype(np.float32)),
        "pred_labels": torch.as_tensor(pred_labels),
        "pred_scores": torch.as_tensor(rng.uniform(0.3, 1.0, n_boxes).astype(np.float32)),
        "im_idx": torch.as_tensor(np.asarray(im_idx, dtype=np.int64)[order]),
        "pair_idx": torch.as_tensor(np.asarray(pair_idx, dtype=np.int64).reshape(-1, 2)[order]),
        "attention_distribution": rows(att, 3),
        "spatial_distribution": rows(spa, 6),
        "contacting_distribution": rows(con, 17),
    }
    return gt, pred
