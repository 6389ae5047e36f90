"""Vectorized triplet recall: STTran's per-frame ranking and matching, for many frames at once.

A *group* is a frame. Predictions are cells ``(row, predicate)`` of STTran's relation score
matrix ``rel_scores`` (R, W): per pair an attention row, a spatial row (pair reversed) and a
contacting row, W = 26 predicate columns; rows come frame by frame, in STTran's order.

Ranking (``evaluate_recall``): predictions are sorted by
``subject score x object score x predicate score``, descending; a ground-truth triplet is hit
at K when one of the first K predictions has the same (subject class, predicate, object class)
and IoU >= threshold on both boxes. Recall@K = hits / GT triplets of the frame.

Ties. STTran sorts with ``np.argsort`` (unstable; AVX-512 on this machine), so its order among
equal scores depends on the numpy build and CPU. Here ties go by STTran's list position,
earlier first, deterministically; without ties both rank identically. The commonest ties,
the zero cells that ``no`` reaches in frames with fewer than 100 positive cells, cannot change
recall when all scores are positive and no pair's object is labelled person: such a zero cell
can only hit a GT triplet that a positive cell of the same pair and predicate, ranked above
it, hits too (the contacting cell of an attention row has its twin in the contacting row, and
so on).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scenellm.evaluation.boxes import iou_planes

UNMATCHED = np.iinfo(np.int64).max  # rank of a GT triplet no prediction hits


def _argsort_ints(keys: np.ndarray) -> np.ndarray:
    """``np.argsort`` of non-negative int64 keys; with the index packed into the low digits a
    plain (about 3x faster) sort does, when the product fits."""
    n = len(keys)
    if n == 0 or int(keys.max()) >= 2**62 // n:
        return np.argsort(keys)
    return np.sort(keys * n + np.arange(n)) % n


def order_in_groups(group: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by (group, score descending, position), ``group`` (n,) already sorted ascending.

    Returns ``order`` (n,), the permutation, and ``rank`` (n,), the 0-based rank of ``order[i]``
    within its group. Each group becomes a row of a padded (groups, longest) matrix sorted
    along its rows; rows holding equal scores are re-sorted stably, so ties keep positions.
    """
    n = len(score)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))  # (G,)
    length = np.diff(np.append(start, n))
    row = np.repeat(np.arange(len(start)), length)
    column = np.arange(n) - start[row]
    padded = np.full((len(start), int(length.max())), np.inf)  # (G, L); padding sorts last
    padded[row, column] = -score
    order = np.argsort(padded, axis=1)
    ranked = np.take_along_axis(padded, order, axis=1)
    in_group = np.arange(1, padded.shape[1]) < length[:, None]  # (G, L - 1)
    tied = ((ranked[:, 1:] == ranked[:, :-1]) & in_group).any(1)
    if tied.any():
        order[tied] = np.argsort(padded[tied], axis=1, kind="stable")
    keep = np.arange(padded.shape[1]) < length[:, None]  # (G, L)
    return (order + start[:, None])[keep], np.broadcast_to(np.arange(padded.shape[1]), keep.shape)[
        keep
    ]


def select_predictions(
    rel_scores: np.ndarray,
    row_group: np.ndarray,
    pair_scores: np.ndarray,
    constraint: str,
    threshold: float = 0.9,
    top: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """STTran's ``evaluate_from_dict`` prediction lists, as (rows, predicates) in list order.

    - ``with``: per row, ``argmax`` of the row.
    - ``semi``: rows with ``s[0] + s[1] > 0`` (attention) give their argmax; else rows with
      ``s[3] + s[4] > 0`` (spatial), else rows with ``s[9] + s[10] > 0`` (contacting), give
      every column with ``s > threshold`` (STTran's literal column tests).
    - ``no``: the ``top`` cells of each group by ``pair_scores[row] * s`` (``pair_scores`` is
      subject x object score in the scores' own dtype, as STTran computes it).

    ``rel_scores`` (R, W) float64, ``row_group`` (R,) ascending, ``pair_scores`` (R,). The
    cells come out grouped, groups ascending.
    """
    if constraint == "with":
        return np.arange(len(rel_scores)), rel_scores.argmax(1)
    if constraint == "semi":
        is_att = rel_scores[:, 0] + rel_scores[:, 1] > 0
        is_spa = ~is_att & (rel_scores[:, 3] + rel_scores[:, 4] > 0)
        is_con = ~is_att & ~is_spa & (rel_scores[:, 9] + rel_scores[:, 10] > 0)
        keep = (rel_scores > threshold) & (is_spa | is_con)[:, None]
        att_rows = np.flatnonzero(is_att)
        keep[att_rows, rel_scores[att_rows].argmax(1)] = True
        return np.nonzero(keep)
    if constraint == "no":
        width = rel_scores.shape[1]
        overall = pair_scores[:, None] * rel_scores  # (R, W)
        # Zero cells rank after every positive one, so only groups with fewer than ``top``
        # positive cells can reach them: sort all nonzero cells, zeros only there.
        n_positive = np.bincount(row_group, weights=(overall > 0).sum(1))
        short = n_positive[row_group] < top
        cells = np.flatnonzero((overall != 0) | short[:, None])  # ravel order = STTran's
        order, rank = order_in_groups(row_group[cells // width], overall.ravel()[cells])
        cells = cells[order[rank < top]]  # groups ascending, each in rank order
        return cells // width, cells % width
    raise ValueError(f"constraint must be 'with', 'semi' or 'no', got {constraint!r}")


class Triplets(NamedTuple):
    """Triplets of a video: ``key`` (n,) packs (frame, subject class, predicate, object class);
    ``sub``/``obj`` (n,) index the xyxy ``boxes`` (B, 4)."""

    key: np.ndarray
    sub: np.ndarray
    obj: np.ndarray
    boxes: np.ndarray


def first_match_rank(
    gt: Triplets, pred: Triplets, pred_rank: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Best rank of a prediction hitting each GT triplet (G,), ``UNMATCHED`` where none does.

    A hit has the GT's key and IoU >= ``iou_threshold`` on both the subject and the object
    box. Both sides are sorted by key; only equal-key (GT, prediction) candidates are
    expanded and their boxes compared, so the cost is linear in their number, not G x M.
    """
    order = _argsort_ints(pred.key)
    sorted_key = pred.key[order]
    gt_order = _argsort_ints(gt.key)  # sorted queries make searchsorted a cheap merge
    gt_key = gt.key[gt_order]
    lo = np.searchsorted(sorted_key, gt_key, "left")
    count = np.searchsorted(sorted_key, gt_key, "right") - lo
    gt_idx = np.repeat(gt_order, count)  # (C,) one row per candidate
    cand = order[np.arange(len(gt_idx)) + np.repeat(lo - (np.cumsum(count) - count), count)]
    gt_planes, pred_planes = np.ascontiguousarray(gt.boxes.T), np.ascontiguousarray(pred.boxes.T)
    gt_boxes = gt_planes[:, np.stack((gt.sub[gt_idx], gt.obj[gt_idx]))]  # (4, 2, C)
    pred_boxes = pred_planes[:, np.stack((pred.sub[cand], pred.obj[cand]))]  # (4, 2, C)
    hit = (iou_planes(gt_boxes, pred_boxes) >= iou_threshold).all(0)  # subject and object
    best = np.full(len(gt.key), UNMATCHED, dtype=np.int64)
    np.minimum.at(best, gt_idx[hit], pred_rank[cand[hit]])
    return best
