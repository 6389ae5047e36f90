"""Detector metrics for SGDET: per-class average precision at IoU 0.5, mAP, and recall of the
ground-truth boxes at a proposal budget. IoU uses the +1-pixel convention of
:mod:`scenellm.evaluation.boxes`, as the scene-graph evaluator does; a match needs
``IoU >= iou_threshold``.

Average precision (VOC 2010+ all-point interpolation). For each class, its detections over all
frames are ranked by score, descending (ties: earlier frame, then earlier row first). Walking
down the ranking, a detection is a true positive when it matches a ground-truth box of its
class and frame that no higher-ranked detection matched, taking the highest-IoU such box (ties:
the earlier box); otherwise it is a false positive, duplicates included. (The VOC devkit
instead tries only the highest-IoU box, matched or not.) With ``P`` ground-truth boxes,
``recall_i = TP_i / P``, ``precision_i = TP_i / i`` after the ``i``-th detection, and

    AP = sum_i (r_i - r_{i-1}) * max_{j >= i} precision_j

over the points where recall changes: the area under the monotone precision envelope. A
class with ground truth and no detection has AP 0; classes without ground truth are left out
of ``mAP``, the mean over the rest.

Recall at a budget ``B``: a ground-truth box is recalled when one of its frame's ``B``
highest-scoring detections (any class; ties: earlier row) has ``IoU >= iou_threshold`` with
it; class-aware recall also needs that detection's label to equal the box's. Both are pooled
over all ground-truth boxes of all frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scenellm.evaluation.boxes import paired_iou

BUDGETS = (10, 20, 50, 100)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP of one ranking's cumulative ``recall`` and ``precision``."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope, non-increasing
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def _group_pairs(group_a: np.ndarray, group_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with ``group_a[i] == group_b[j]``, ordered by i then j: (C,), (C,)."""
    order = np.argsort(group_b, kind="stable")
    sorted_b = group_b[order]
    lo = np.searchsorted(sorted_b, group_a, "left")
    count = np.searchsorted(sorted_b, group_a, "right") - lo
    ia = np.repeat(np.arange(len(group_a)), count)
    ib = order[np.arange(len(ia)) + np.repeat(lo - (np.cumsum(count) - count), count)]
    return ia, ib


def _rank_in_group(group: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rank of each element (n,) within its group, along ``order`` (n,) sorted by group."""
    ranked = group[order]
    start = np.searchsorted(ranked, ranked, "left")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - start
    return rank


def true_positives(gt_frame, gt_boxes, gt_labels, det_frame, det_boxes, det_labels, det_scores,
                   iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy matching of the module docstring: (D,) bool, True where a detection is a TP.

    Detections of one (frame, class) group are matched in ranking order, one group position
    per step for all groups at once: a ground-truth box belongs to one group, so the
    detections of one step never compete.
    """
    n_classes = int(max(gt_labels.max(initial=0), det_labels.max(initial=0))) + 1
    gt_group = gt_frame.astype(np.int64) * n_classes + gt_labels
    det_group = det_frame.astype(np.int64) * n_classes + det_labels
    det, gt = _group_pairs(det_group, gt_group)
    iou = paired_iou(det_boxes[det], gt_boxes[gt])
    det, gt, iou = det[iou >= iou_threshold], gt[iou >= iou_threshold], iou[iou >= iou_threshold]
    by_score = np.lexsort((np.arange(len(det_group)), -det_scores, det_group))
    step = _rank_in_group(det_group, by_score)
    order = np.lexsort((gt, -iou, det, step[det]))  # by step, then detection, best IoU first
    det, gt, pair_step = det[order], gt[order], step[det][order]
    bounds = np.searchsorted(pair_step, np.arange(pair_step.max(initial=-1) + 2))
    matched = np.zeros(len(gt_group), dtype=bool)
    tp = np.zeros(len(det_group), dtype=bool)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        free = lo + np.flatnonzero(~matched[gt[lo:hi]])
        first = free[np.unique(det[free], return_index=True)[1]]  # each detection's best box
        tp[det[first]] = True
        matched[gt[first]] = True
    return tp


def average_precisions(gt_frame, gt_boxes, gt_labels, det_frame, det_boxes, det_labels,
                       det_scores, iou_threshold: float = 0.5) -> dict[int, float]:
    """AP of each class with ground truth, ``{class id: AP}`` ascending by id.

    Flat arrays over all frames: ``gt_frame`` (G,) frame index, ``gt_boxes`` (G, 4) xyxy,
    ``gt_labels`` (G,) class ids; ``det_*`` likewise (D,), with ``det_scores`` (D,).
    """
    tp = true_positives(gt_frame, gt_boxes, gt_labels, det_frame, det_boxes, det_labels,
                        det_scores, iou_threshold)
    order = np.lexsort((np.arange(len(det_labels)), det_frame, -det_scores, det_labels))
    labels, tp = det_labels[order], tp[order]
    out = {}
    for cls, positives in zip(*np.unique(gt_labels, return_counts=True), strict=True):
        hits = tp[labels == cls]
        cum_tp = np.cumsum(hits)
        precision = cum_tp / np.arange(1, len(hits) + 1)
        out[int(cls)] = average_precision(cum_tp / positives, precision)
    return out


def recall_at_budgets(gt_frame, gt_boxes, gt_labels, det_frame, det_boxes, det_labels,
                      det_scores, budgets: Sequence[int] = BUDGETS,
                      iou_threshold: float = 0.5) -> tuple[dict[int, float], dict[int, float]]:
    """Class-agnostic and class-aware recall of the ground-truth boxes, ``{budget: recall}``
    each (flat arrays as in :func:`average_precisions`); NaN without ground truth."""
    by_score = np.lexsort((np.arange(len(det_frame)), -det_scores, det_frame))
    rank = _rank_in_group(det_frame.astype(np.int64), by_score)  # (D,) rank within frame
    gt, det = _group_pairs(gt_frame.astype(np.int64), det_frame.astype(np.int64))
    hit = paired_iou(gt_boxes[gt], det_boxes[det]) >= iou_threshold
    never = np.iinfo(np.int64).max
    best, best_same = np.full(len(gt_frame), never), np.full(len(gt_frame), never)
    np.minimum.at(best, gt[hit], rank[det[hit]])
    same = hit & (gt_labels[gt] == det_labels[det])
    np.minimum.at(best_same, gt[same], rank[det[same]])
    if len(gt_frame) == 0:
        nan = {int(b): float("nan") for b in budgets}
        return nan, dict(nan)
    return ({int(b): float(np.mean(best < b)) for b in budgets},
            {int(b): float(np.mean(best_same < b)) for b in budgets})


@dataclass(frozen=True)
class DetectionMetrics:
    """``ap`` and ``gt_counts`` by class id (classes with ground truth); ``recall`` and
    ``class_recall`` by budget."""

    ap: dict[int, float]
    gt_counts: dict[int, int]
    recall: dict[int, float]
    class_recall: dict[int, float]
    iou_threshold: float = 0.5

    @property
    def mean_ap(self) -> float:
        """Mean AP over classes with ground truth (NaN when there are none)."""
        return float(np.mean(list(self.ap.values()))) if self.ap else float("nan")

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, float]:
        """Flat metrics: ``mAP@0.5``, ``AP@0.5/<class>``, ``recall@B``, ``class_recall@B``;
        ``class_names[id]`` names a class (default: its id)."""
        at = f"@{self.iou_threshold:g}"
        out = {f"mAP{at}": self.mean_ap}
        for cls, ap in self.ap.items():
            out[f"AP{at}/{class_names[cls] if class_names else cls}"] = ap
        out.update({f"recall@{b}": r for b, r in self.recall.items()})
        out.update({f"class_recall@{b}": r for b, r in self.class_recall.items()})
        return out


def _flatten(frames: Sequence[Sequence[np.ndarray]], n: int) -> list[np.ndarray]:
    """Per-frame tuples of arrays → frame index (T,) and each array concatenated."""
    sizes = [len(f[1]) for f in frames]
    frame = np.repeat(np.arange(len(frames)), sizes)
    empty = [np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0)][:n]
    return [frame, *(np.concatenate([e, *(np.asarray(f[i]) for f in frames)])
                     for i, e in enumerate(empty))]


def evaluate_detections(
    truth: Sequence[tuple[np.ndarray, np.ndarray]],
    detections: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    iou_threshold: float = 0.5,
    budgets: Sequence[int] = BUDGETS,
) -> DetectionMetrics:
    """Detector metrics over frames: ``truth[i]`` = (boxes (g, 4), labels (g,)) and
    ``detections[i]`` = (boxes (k, 4), labels (k,), scores (k,)) of frame ``i``."""
    if len(truth) != len(detections):
        raise ValueError(f"{len(truth)} ground-truth frames but {len(detections)} detection "
                         "frames; give both for the same frames, in the same order")
    gt = _flatten(truth, 2)
    det = _flatten(detections, 3)
    gt[2], det[2] = gt[2].astype(np.int64), det[2].astype(np.int64)
    ap = average_precisions(*gt, *det, iou_threshold=iou_threshold)
    recall, class_recall = recall_at_budgets(*gt, *det, budgets, iou_threshold)
    classes, counts = np.unique(gt[2], return_counts=True)
    return DetectionMetrics(ap, {int(c): int(n) for c, n in zip(classes, counts, strict=True)},
                            recall, class_recall, iou_threshold)
