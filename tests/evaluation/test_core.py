"""The vectorized kernels against direct per-element references."""

from __future__ import annotations

import numpy as np
import pytest
from reference_loop import bbox_overlaps as loop_bbox_overlaps

from scenellm.evaluation.boxes import bbox_overlaps, paired_iou
from scenellm.evaluation.recall import (
    UNMATCHED,
    Triplets,
    first_match_rank,
    order_in_groups,
    select_predictions,
)


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.integers(0, 40, size=(n, 2)).astype(float)
    wh = rng.integers(-2, 25, size=(n, 2)) + rng.choice([0.0, 0.5], size=(n, 2))
    return np.concatenate((xy, xy + wh), axis=1)  # some empty or inverted, some half-pixel


def test_iou_equals_the_cython_loop_bit_for_bit():
    rng = np.random.default_rng(0)
    a, b = _boxes(rng, 60), _boxes(rng, 70)
    expected = loop_bbox_overlaps(a, b)
    assert np.array_equal(bbox_overlaps(a, b), expected)
    assert np.array_equal(paired_iou(a, b[:60]), np.diag(loop_bbox_overlaps(a, b[:60])))
    assert 0 < (expected > 0).mean() < 1


def test_order_in_groups_sorts_by_score_then_position():
    rng = np.random.default_rng(1)
    group = np.sort(rng.integers(0, 30, 500))
    score = rng.integers(0, 6, 500) / 4.0  # many ties
    order, rank = order_in_groups(group, score)
    expected = np.lexsort((np.arange(500), -score, group))
    assert np.array_equal(order, expected)
    starts = np.searchsorted(group[expected], group[expected])
    assert np.array_equal(rank, np.arange(500) - starts)


def _naive_top_cells(rel, group, pair_scores, top):
    """Per group, STTran's ravel order of its rows' cells, sorted by score (stable), top cells."""
    out = []
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        overall = (pair_scores[rows, None] * rel[rows]).ravel()
        cells = np.argsort(-overall, kind="stable")[:top]
        out += [(rows[c // rel.shape[1]], c % rel.shape[1]) for c in cells]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_no_constraint_top_cells_match_a_full_sort(seed):
    rng = np.random.default_rng(seed)
    n_rows = 120
    group = np.sort(rng.integers(0, 12, n_rows))  # groups from 3 to 20 rows: short and long
    rel = np.zeros((n_rows, 26))
    for r in range(n_rows):  # one block per row, as STTran's, with ties and zeros inside
        lo, hi = [(0, 3), (3, 9), (9, 26)][r % 3]
        rel[r, lo:hi] = rng.choice([0.0, 0.25, 0.5, rng.random()], size=hi - lo)
    pair_scores = rng.choice([0.5, 1.0], n_rows)
    positive = np.bincount(group, (rel > 0).sum(1))
    assert positive.min() < 40 < positive.max()  # groups reaching zero cells, and not
    rows, cols = select_predictions(rel, group, pair_scores, "no", top=40)
    assert list(zip(rows, cols, strict=True)) == _naive_top_cells(rel, group, pair_scores, 40)


def test_semi_constraint_follows_sttran_column_tests():
    rel = np.zeros((4, 26))
    rel[0, :3] = [0.2, 0.3, 0.5]  # attention row: argmax only
    rel[1, 3:9] = [0.95, 0.0, 0.91, 0.2, 0.99, 0.1]  # spatial row: every score > 0.9
    rel[2, 9:] = 0.95  # contacting row: all 17
    rel[3, 3:9] = [0.0, 0.0, 0.99, 0.0, 0.0, 0.0]  # s[3] + s[4] == 0: read as contacting, none
    rows, cols = select_predictions(rel, np.zeros(4, int), np.ones(4), "semi", threshold=0.9)
    expected = [(0, 2), (1, 3), (1, 5), (1, 7)] + [(2, c) for c in range(9, 26)]
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == expected


def test_first_match_rank_equals_a_double_loop():
    rng = np.random.default_rng(3)
    boxes = _boxes(rng, 40)
    gt = Triplets(rng.integers(0, 6, 50), rng.integers(0, 40, 50), rng.integers(0, 40, 50), boxes)
    pred_boxes = boxes + rng.normal(0, 2, boxes.shape)
    pred = Triplets(
        rng.integers(0, 6, 90), rng.integers(0, 40, 90), rng.integers(0, 40, 90), pred_boxes
    )
    rank = rng.permutation(90)
    best = first_match_rank(gt, pred, rank, 0.5)
    for g in range(50):
        hits = [
            rank[m]
            for m in range(90)
            if pred.key[m] == gt.key[g]
            and loop_bbox_overlaps(boxes[[gt.sub[g]]], pred_boxes[[pred.sub[m]]])[0, 0] >= 0.5
            and loop_bbox_overlaps(boxes[[gt.obj[g]]], pred_boxes[[pred.obj[m]]])[0, 0] >= 0.5
        ]
        assert best[g] == (min(hits) if hits else UNMATCHED)
    assert 0 < (best < UNMATCHED).sum() < 50
