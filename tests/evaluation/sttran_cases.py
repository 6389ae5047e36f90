"""Builders for small hand-made evaluator inputs in STTran's formats."""

from __future__ import annotations

import numpy as np
import torch

from scenellm.data import vocab

VOCAB = (
    vocab.STTRAN_OBJECT_CLASSES,
    vocab.PREDICATES,
    vocab.ATTENTION,
    vocab.SPATIAL,
    vocab.CONTACTING,
)
ATT = {name: i for i, name in enumerate(vocab.ATTENTION)}
SPA = {name: i for i, name in enumerate(vocab.SPATIAL)}
CON = {name: i for i, name in enumerate(vocab.CONTACTING)}
CUP = vocab.object_id("cup/glass/bottle")
BOOK = vocab.object_id("book")
PERSON_BOX = [0.0, 0.0, 99.0, 199.0]


def labels(*indices: int) -> torch.Tensor:
    return torch.tensor(indices, dtype=torch.long)


def gt_object(cls: int, box, attention: str, spatial=(), contacting=()) -> dict:
    return {
        "class": cls,
        "bbox": np.asarray(box, dtype=np.float64),
        "attention_relationship": labels(ATT[attention]),
        "spatial_relationship": labels(*(SPA[s] for s in spatial)),
        "contacting_relationship": labels(*(CON[c] for c in contacting)),
    }


def gt_frame(*objects: dict, person_box=PERSON_BOX) -> list:
    return [{"person_bbox": np.asarray([person_box], dtype=np.float64)}, *objects]


def one_hot_logits(index: int, strength: float = 6.0, width: int = 3) -> np.ndarray:
    logits = np.zeros(width)
    logits[index] = strength
    return logits


def peaked(indices, width: int, high: float = 0.95, low: float = 0.05) -> np.ndarray:
    """Probabilities: ``high`` at ``indices``, ``low`` elsewhere."""
    probs = np.full(width, low)
    probs[list(indices)] = high
    return probs


def prediction(
    boxes: list[tuple[int, list[float], int]],
    pairs: list[tuple[int, int, int]],
    attention: list[np.ndarray],
    spatial: list[np.ndarray],
    contacting: list[np.ndarray],
    scores: list[float] | None = None,
) -> dict[str, torch.Tensor]:
    """``boxes``: (frame, xyxy, label); ``pairs``: (frame, subject box, object box); one
    attention logit row and spatial / contacting probability row per pair. The same labels
    and scores serve predcls and sgcls."""
    scores = [1.0] * len(boxes) if scores is None else scores
    label = torch.tensor([b[2] for b in boxes], dtype=torch.long)
    score = torch.tensor(scores, dtype=torch.float32)

    def rows(x: list, width: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(-1, width))

    return {
        "boxes": torch.tensor([[f, *box] for f, box, _ in boxes], dtype=torch.float32),
        "labels": label,
        "scores": score,
        "pred_labels": label.clone(),
        "pred_scores": score.clone(),
        "im_idx": torch.tensor([p[0] for p in pairs], dtype=torch.long),
        "pair_idx": torch.tensor([[p[1], p[2]] for p in pairs], dtype=torch.long).reshape(-1, 2),
        "attention_distribution": rows(attention, 3),
        "spatial_distribution": rows(spatial, 6),
        "contacting_distribution": rows(contacting, 17),
    }
