"""The two mean-recall definitions on a case where they differ."""

from __future__ import annotations

import pytest
from sttran_cases import (
    ATT,
    CUP,
    PERSON_BOX,
    VOCAB,
    gt_frame,
    gt_object,
    one_hot_logits,
    peaked,
    prediction,
)

from scenellm.evaluation import SceneGraphEvaluator


def _video():
    """Frame 0: three cups looked at, all found. Frame 1: a cup looked at but mislocated, and a
    cup not looked at, found. GT holds attention triplets only.

    looking_at: TEMPURA 3 / 4 = 0.75; per frame mean(3/3, 0/1) = 0.5.
    not_looking_at: 1 / 1 = 1.0 both ways.
    mR@K = (0.75 + 1) / 2 = 0.875; mR@K_frame = (0.5 + 1) / 2 = 0.75; R@K = mean(1, 1/2) = 0.75.
    """
    boxes_0 = [[150.0, 10.0 + 50 * i, 190.0, 50.0 + 50 * i] for i in range(3)]
    frame_0 = gt_frame(*(gt_object(CUP, b, "looking_at") for b in boxes_0))
    frame_1 = gt_frame(
        gt_object(CUP, [150, 10, 190, 50], "looking_at"),
        gt_object(CUP, [150, 100, 190, 140], "not_looking_at"),
    )
    boxes = [
        (0, PERSON_BOX, 1),
        *((0, b, CUP) for b in boxes_0),
        (1, PERSON_BOX, 1),
        (1, [300, 300, 340, 340], CUP),
        (1, [150, 100, 190, 140], CUP),
    ]
    pairs = [(0, 0, 1), (0, 0, 2), (0, 0, 3), (1, 4, 5), (1, 4, 6)]
    attention = [one_hot_logits(ATT["looking_at"])] * 4 + [one_hot_logits(ATT["not_looking_at"])]
    return [frame_0, frame_1], prediction(
        boxes, pairs, attention, [peaked([0], 6)] * 5, [peaked([0], 17)] * 5
    )


def test_tempura_and_frame_mean_recall_differ_as_computed_by_hand():
    ev = SceneGraphEvaluator("predcls", *VOCAB)
    ev.evaluate_scene_graph(*_video())
    summary = ev.summary()
    for k in (10, 20, 50, 100):
        assert summary[f"R@{k}"] == pytest.approx(0.75)
        assert summary[f"mR@{k}"] == pytest.approx(0.875)
        assert summary[f"mR@{k}_frame"] == pytest.approx(0.75)
        assert summary["per_predicate"][k] == pytest.approx(
            {"looking_at": 0.75, "not_looking_at": 1.0}
        )
    assert summary["frames"] == 2


def test_tallies_accumulate_over_videos_and_reset():
    ev = SceneGraphEvaluator("predcls", *VOCAB)
    for _ in range(3):  # the same video thrice: every ratio stays the same
        ev.evaluate_scene_graph(*_video())
    summary = ev.summary()
    assert (summary["frames"], summary["mR@20"], summary["mR@20_frame"]) == (
        6,
        pytest.approx(0.875),
        pytest.approx(0.75),
    )
    ev.reset_result()
    empty = ev.summary()
    assert empty["frames"] == 0 and empty["per_predicate"][20] == {}
    assert all(empty[k] != empty[k] for k in ("R@20", "mR@20", "mR@20_frame"))  # NaN
