"""Seeded synthetic SGDET videos in STTran's evaluator formats: the predictions stand on
detected boxes, not on the ground-truth list.

Per frame the detector may miss the person (the frame then has no pairs) or an object, find
an object twice, place boxes that overlap the truth anywhere from well to not at all (the
jitter of ``sttran_synthetic`` straddles IoU 0.5), mislabel objects (never as ``person``) and
add spurious boxes. As in STTran's SGDET, the person detection is paired with every other
detection of its frame. Scores are continuous, so rankings have no ties.
"""

from __future__ import annotations

import numpy as np
import torch
from sttran_synthetic import N_OBJECT_IDS, _box, _jitter, _probabilities, gt_object


def _pair_scores(rng: np.random.Generator, truth: dict | None) -> tuple[np.ndarray, ...]:
    """Attention logits and spatial / contacting probabilities, boosted on ``truth``'s labels."""
    none = torch.zeros(0, dtype=torch.long)
    logits = rng.normal(0.0, 1.5, size=3)
    logits[(truth["attention_relationship"] if truth else none).numpy()] += 2.5
    return (logits, _probabilities(rng, 6, truth["spatial_relationship"] if truth else none),
            _probabilities(rng, 17, truth["contacting_relationship"] if truth else none))


def detected_video(
    rng: np.random.Generator,
    n_frames: int = 6,
    objects: tuple[int, int] = (1, 5),
    p_miss_person: float = 0.1,
    p_miss: float = 0.15,
    p_twice: float = 0.2,
    p_mislabel: float = 0.25,
) -> tuple[list, dict[str, torch.Tensor]]:
    """One video: ``gt`` (list of frames) and ``pred`` (dict of tensors), STTran formats."""
    gt, boxes, labels, pair_idx, im_idx, att, spa, con = [], [], [], [], [], [], [], []
    for f in range(n_frames):
        person = _box(rng)
        frame = [{"person_bbox": person[None]}]
        found: list[tuple[int, dict | None]] = []  # (box index, GT object or None)
        person_idx = None
        if rng.random() >= p_miss_person:
            person_idx = len(boxes)
            boxes.append([f, *_jitter(rng, person)])
            labels.append(1)
        for _ in range(rng.integers(objects[0], objects[1] + 1)):
            obj = gt_object(rng)
            cls = obj["class"]
            frame.append(obj)
            times = 0 if rng.random() < p_miss else (2 if rng.random() < p_twice else 1)
            for _ in range(times):
                found.append((len(boxes), obj))
                boxes.append([f, *_jitter(rng, obj["bbox"])])
                wrong = rng.random() < p_mislabel
                labels.append(int(rng.integers(2, N_OBJECT_IDS)) if wrong else cls)
        for _ in range(rng.integers(0, 3)):  # spurious detections
            found.append((len(boxes), None))
            boxes.append([f, *_box(rng)])
            labels.append(int(rng.integers(2, N_OBJECT_IDS)))
        gt.append(frame)
        if person_idx is None:
            continue
        for box_idx, obj in found:
            pair_idx.append([person_idx, box_idx])
            im_idx.append(f)
            for out, scores in zip((att, spa, con), _pair_scores(rng, obj), strict=True):
                out.append(scores)

    def rows(x: list, width: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1, width))

    label = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return gt, {
        "boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 5)),
        "pred_labels": label,
        "pred_scores": torch.as_tensor(rng.uniform(0.3, 1.0, len(labels)).astype(np.float32)),
        "im_idx": torch.as_tensor(np.asarray(im_idx, dtype=np.int64)),
        "pair_idx": torch.as_tensor(np.asarray(pair_idx, dtype=np.int64).reshape(-1, 2)),
        "attention_distribution": rows(att, 3),
        "spatial_distribution": rows(spa, 6),
        "contacting_distribution": rows(con, 17),
    }
