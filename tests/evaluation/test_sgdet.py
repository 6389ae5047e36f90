"""SGDET: STTran's recall on detected boxes. Hand-built frames for each way a detection can
miss, and agreement with the per-frame loop on random detections that only partly overlap
the truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_loop import BasicSceneGraphEvaluator
from sgdet_synthetic import detected_video
from sttran_cases import (
    ATT,
    BOOK,
    CON,
    CUP,
    PERSON_BOX,
    SPA,
    VOCAB,
    gt_frame,
    gt_object,
    one_hot_logits,
    peaked,
    prediction,
)

from scenellm.evaluation import SceneGraphEvaluator

KS = (10, 20, 50, 100)
CUP_BOX = [200.0, 0.0, 299.0, 99.0]


def cup(box=CUP_BOX, spatial=("in_front_of",)):
    return gt_object(CUP, box, "looking_at", spatial, ("holding",))


def right_scores(spatial=("in_front_of",)):
    """One pair's attention / spatial / contacting rows, peaked on the cup's true labels."""
    return ([one_hot_logits(ATT["looking_at"])], [peaked([SPA[s] for s in spatial], 6)],
            [peaked([CON["holding"]], 17)])


def detected(frame: int, person=PERSON_BOX, obj=CUP_BOX, label=CUP, scores=None) -> dict:
    """A person and one object detected in ``frame``, paired, scored on the cup's labels."""
    return prediction([(frame, list(person), 1), (frame, list(obj), label)], [(frame, 0, 1)],
                      *(scores or right_scores()))


def recalls(gt: list, pred: dict, constraint: str = "with") -> dict[int, list[float]]:
    evaluator = SceneGraphEvaluator("sgdet", *VOCAB, constraint=constraint)
    evaluator.evaluate_scene_graph(gt, pred)
    return evaluator.result_dict["sgdet_recall"]


def test_detected_boxes_on_the_truth_with_right_labels_hit_everything():
    assert recalls([gt_frame(cup())], detected(0))[10] == [1.0]


@pytest.mark.parametrize(("y2", "recall"), [(49.0, 1.0), (48.0, 0.0)])
def test_object_box_at_iou_half_hits_and_just_below_misses(y2, recall):
    """[200, 0, 299, 49] covers 5000 of the cup's 10000 pixels (IoU 0.5); y2 = 48: 0.49."""
    assert recalls([gt_frame(cup())], detected(0, obj=[200.0, 0.0, 299.0, y2]))[10] == [recall]


def test_iou_takes_the_plus_one_pixel_convention():
    """[0, 0, 9, 4] on [0, 0, 9, 9]: IoU 50/100 with +1 pixels (a hit), 36/81 without."""
    gt = [gt_frame(cup(box=[200.0, 0.0, 209.0, 9.0]))]
    assert recalls(gt, detected(0, obj=[200.0, 0.0, 209.0, 4.0]))[10] == [1.0]


def test_right_boxes_with_a_wrong_detected_label_hit_nothing():
    assert recalls([gt_frame(cup())], detected(0, label=BOOK))[100] == [0.0]


def test_a_person_box_off_the_person_hits_nothing():
    off = [0.0, 100.0, 99.0, 299.0]  # half the person's height: IoU 1/3
    assert recalls([gt_frame(cup())], detected(0, person=off))[100] == [0.0]


def test_two_detections_of_one_object_count_each_truth_once():
    """The first copy gets attention right, the second spatial and contacting: together all
    three truths, and recall stays 1 although both copies hit attention."""
    first = (one_hot_logits(ATT["looking_at"]), peaked([SPA["behind"]], 6),
             peaked([CON["wiping"]], 17))
    second = (one_hot_logits(ATT["looking_at"]), peaked([SPA["in_front_of"]], 6),
              peaked([CON["holding"]], 17))
    pred = prediction([(0, PERSON_BOX, 1), (0, CUP_BOX, CUP), (0, [201.0, 1.0, 299.0, 99.0], CUP)],
                      [(0, 0, 1), (0, 0, 2)], *map(list, zip(first, second, strict=True)))
    assert recalls([gt_frame(cup())], pred)[10] == [1.0]


def test_a_frame_where_the_detector_finds_nothing_scores_zero():
    gt = [gt_frame(cup()), gt_frame(cup())]
    assert recalls(gt, detected(0))[100] == [1.0, 0.0]
    assert recalls(gt, detected(1))[100] == [0.0, 1.0]


def test_a_video_without_any_detection_scores_zero_in_every_frame():
    empty = {**prediction([], [], [], [], []), "boxes": torch.zeros((0, 5))}
    assert recalls([gt_frame(cup()), gt_frame(cup())], empty)[10] == [0.0, 0.0]


@pytest.mark.parametrize(("constraint", "recall"), [("with", 0.75), ("semi", 1.0), ("no", 1.0)])
def test_constraints_on_detected_boxes(constraint, recall):
    """Two spatial truths both scored 0.95: ``with`` keeps one per row (3 of 4 truths),
    ``semi`` every spatial score above 0.9, ``no`` the top cells."""
    spatial = ("beneath", "in_front_of")
    gt = [gt_frame(cup(spatial=spatial))]
    pred = detected(0, scores=right_scores(spatial))
    assert recalls(gt, pred, constraint)[10] == [recall]


# ---- against the loop ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def videos() -> list:
    rng = np.random.default_rng(11)
    return [detected_video(rng, n_frames=int(rng.integers(1, 7))) for _ in range(60)]


@pytest.mark.parametrize("constraint", ["with", "semi", "no"])
def test_sgdet_recalls_equal_the_loop_on_partly_overlapping_detections(videos, constraint):
    loop = BasicSceneGraphEvaluator("sgdet", *VOCAB, constraint=constraint, semithreshold=0.9)
    ours = SceneGraphEvaluator("sgdet", *VOCAB, constraint=constraint)
    ours.flush_frames = 64
    for gt, pred in videos:
        loop.evaluate_scene_graph(gt, dict(pred))
        ours.evaluate_scene_graph(gt, pred)
    expected, got = loop.result_dict["sgdet_recall"], ours.result_dict["sgdet_recall"]
    assert len(got[10]) == sum(len(gt) for gt, _ in videos)
    for k in KS:
        np.testing.assert_allclose(got[k], expected[k], rtol=0, atol=1e-12)
    assert 0.05 < np.mean(got[100]) < 0.95  # neither trivial nor hopeless
    assert min(got[100]) == 0.0  # frames whose person the detector missed
    summary, seen = ours.summary(), loop.mean_recall_count > 0
    for k in KS:
        tempura = loop.mean_recall_hit[k][seen] / loop.mean_recall_count[seen]
        assert summary[f"mR@{k}"] == pytest.approx(tempura.mean(), abs=1e-12)


def test_sgdet_reads_detected_labels_not_predcls_ones(videos):
    """``labels`` / ``scores`` (what PREDCLS reads) are ignored: swapping them in changes
    nothing."""
    gt, pred = videos[0]
    noisy = {**pred, "labels": torch.zeros_like(pred["pred_labels"]),
             "scores": torch.zeros_like(pred["pred_scores"])}
    assert recalls(gt, noisy, "no") == recalls(gt, pred, "no")
