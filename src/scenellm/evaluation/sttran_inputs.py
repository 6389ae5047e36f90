"""STTran's evaluator inputs, read per video into compact arrays (``triplets`` expands them).

Ground truth ``gt``: one list per frame; ``frame[0] = {'person_bbox': (1, 4) xyxy}``, then one
dict per object: ``'class'`` (STTran id), ``'bbox'`` (4,) xyxy, and kind-local label tensors
``'attention_relationship'``, ``'spatial_relationship'``, ``'contacting_relationship'``.
Node 0 of a frame is the person (class 1). Triplets: person -> object for each attention and
contacting label, **object -> person** for each spatial label.

Predictions ``pred`` (tensors or arrays): ``boxes`` (N, 5) ``[frame, x1, y1, x2, y2]``,
``labels``/``scores`` (predcls) or ``pred_labels``/``pred_scores`` (N,), ``im_idx`` (P,),
``pair_idx`` (P, 2) (subject, object) into ``boxes``, ``attention_distribution`` (P, 3) logits,
``spatial_distribution`` (P, 6) and ``contacting_distribution`` (P, 17) probabilities.

Reading copies what it needs, so the inputs are never written to nor referenced later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERSON = 1  # STTran class id of the person node
_KINDS = ("attention_relationship", "spatial_relationship", "contacting_relationship")


def _numpy(x) -> np.ndarray:
    """A private copy of a tensor or array."""
    return x.detach().cpu().numpy().copy() if hasattr(x, "detach") else np.array(x)


def _boxes(items: list) -> np.ndarray:
    """Stack (4,) or (1, 4) boxes into (n, 4) float64."""
    try:
        return np.asarray(items, dtype=np.float64).reshape(len(items), 4)
    except ValueError:  # mixed shapes
        return np.array([np.ravel(b) for b in items], dtype=np.float64).reshape(len(items), 4)


def _labels(items: list) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate label lists (tensors, arrays, lists or ints): counts (n,), flat (T,)."""
    import torch

    try:  # AG's usual form: one 1-D LongTensor per object and kind
        flat = torch.cat(items).reshape(-1).numpy() if items else np.zeros(0)
        counts = np.fromiter(map(torch.Tensor.numel, items), np.int64, len(items))
        return counts, flat.astype(np.int64, copy=False)  # empty tensors may come as float
    except (TypeError, RuntimeError):  # lists, arrays, ints, 0-d tensors
        pass
    lists = [np.ravel(x.tolist() if hasattr(x, "tolist") else x) for x in items]
    counts = np.array([len(x) for x in lists], dtype=np.int64)
    flat = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
    return counts, flat


@dataclass(frozen=True)
class VideoTruth:
    """One video's GT as read: node ``boxes`` (F + O, 4) (the F persons, then the O objects),
    ``obj_frame`` and ``obj_class`` (O,), label ``counts`` (3, O) per kind and object, and the
    kind-local ``labels`` (T,) in that order."""

    n_frames: int
    boxes: np.ndarray
    obj_frame: np.ndarray
    obj_class: np.ndarray
    counts: np.ndarray
    labels: np.ndarray


def read_ground_truth(gt: list, kind_sizes: tuple[int, int, int]) -> VideoTruth:
    """Read one video's GT; ``kind_sizes`` bound each kind's labels."""
    n_frames = len(gt)
    objects = [obj for frame in gt for obj in frame[1:]]
    boxes = np.concatenate(  # (F + O, 4)
        (_boxes([frame[0]["person_bbox"] for frame in gt]), _boxes([o["bbox"] for o in objects]))
    )
    obj_frame = np.repeat(np.arange(n_frames), [len(frame) - 1 for frame in gt])  # (O,)
    obj_class = np.array([obj["class"] for obj in objects], dtype=np.int64)
    counts, labels = _labels([obj[kind] for kind in _KINDS for obj in objects])
    counts = counts.reshape(3, len(objects))
    bound = np.repeat(kind_sizes, counts.sum(1))  # (T,) size of each label's kind
    if len(labels) and ((labels < 0) | (labels >= bound)).any():
        raise ValueError(f"a relationship label is outside its kind's range 0..{kind_sizes}")
    per_frame = np.bincount(obj_frame, counts.sum(0), minlength=n_frames)
    if n_frames and per_frame.min() == 0:
        raise ValueError(
            f"frame {int(np.argmin(per_frame))} of the video has no ground-truth relationship; "
            "recall is undefined there (STTran divides by zero), so drop such frames first"
        )
    if len(obj_class) and obj_class.min() < 0:
        raise ValueError("a ground-truth object has a negative class id")
    return VideoTruth(n_frames, boxes, obj_frame, obj_class, counts, labels)


@dataclass(frozen=True)
class VideoPredictions:
    """One video's predictions as read (private copies); ``pair_score`` (P,) is subject x
    object score in the scores' own dtype, as STTran's ``no`` constraint computes it."""

    n_frames: int
    im_idx: np.ndarray
    pair: np.ndarray
    attention_logits: np.ndarray
    spatial: np.ndarray
    contacting: np.ndarray
    pair_score: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    obj_scores: np.ndarray


def read_predictions(pred: dict, n_frames: int, use_pred_labels: bool) -> VideoPredictions:
    """Read one video's predictions (``pred_labels``/``pred_scores`` unless predcls)."""
    labels, scores = ("pred_labels", "pred_scores") if use_pred_labels else ("labels", "scores")
    pair = _numpy(pred["pair_idx"]).reshape(-1, 2).astype(np.int64, copy=False)
    classes = _numpy(pred[labels]).reshape(-1).astype(np.int64, copy=False)
    obj_scores = _numpy(pred[scores]).reshape(-1)
    boxes = _numpy(pred["boxes"])[:, 1:].astype(np.float64)
    if len(pair) and (pair.min() < 0 or pair.max() >= min(map(len, (boxes, classes, obj_scores)))):
        raise ValueError("pred['pair_idx'] points outside pred['boxes']")
    if len(classes) and classes.min() < 0:
        raise ValueError(f"pred['{labels}'] holds a negative class id")
    return VideoPredictions(
        n_frames=n_frames,
        im_idx=_numpy(pred["im_idx"]).reshape(-1),
        pair=pair,
        attention_logits=_numpy(pred["attention_distribution"]),
        spatial=_numpy(pred["spatial_distribution"]),
        contacting=_numpy(pred["contacting_distribution"]),
        pair_score=obj_scores[pair].prod(1).astype(np.float64),
        boxes=boxes,
        classes=classes,
        obj_scores=obj_scores.astype(np.float64),
    )
