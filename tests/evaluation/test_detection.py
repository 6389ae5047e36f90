"""Detector AP / mAP / recall at a budget: hand-computed cases, and the vectorized kernels
against a per-frame loop written here from the module's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from scenellm.evaluation.detection import average_precision, evaluate_detections

CUP, BOOK = 11, 5
TOL = 1e-12


def frame(boxes, labels, scores=None):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64)
    return (boxes, labels) if scores is None else (boxes, labels, np.asarray(scores, float))


def ap_of(truth, detections, **kw) -> dict[int, float]:
    return evaluate_detections(truth, detections, **kw).ap


# ---- the loop reference -------------------------------------------------------------------

def iou_loop(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(iw * ih / (union - iw * ih))


def ap_loop(truth, detections, thr=0.5) -> dict[int, float]:
    """Per class: rank, match greedily one detection at a time, VOC devkit ``voc_ap`` loop."""
    out = {}
    for cls in sorted({int(c) for _, labels in truth for c in labels}):
        ranked = sorted(
            ((-float(s), f, j) for f, (_, labels, scores) in enumerate(detections)
             for j, s in enumerate(scores) if labels[j] == cls))
        taken, tp = set(), []
        for _, f, j in ranked:
            best, best_iou = None, -1.0
            for g, (box, label) in enumerate(zip(*truth[f], strict=True)):
                iou = iou_loop(detections[f][0][j], box)
                if label == cls and (f, g) not in taken and iou >= thr and iou > best_iou:
                    best, best_iou = g, iou
            tp.append(best is not None)
            if best is not None:
                taken.add((f, best))
        positives = sum(int(c == cls) for _, labels in truth for c in labels)
        mrec, mpre, hits = [0.0], [0.0], 0
        for i, t in enumerate(tp):
            hits += t
            mrec.append(hits / positives)
            mpre.append(hits / (i + 1))
        mrec.append(1.0)
        mpre.append(0.0)
        for i in range(len(mpre) - 1, 0, -1):
            mpre[i - 1] = max(mpre[i - 1], mpre[i])
        out[cls] = sum((mrec[i] - mrec[i - 1]) * mpre[i]
                       for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])
    return out


def recall_loop(truth, detections, budget, class_aware, thr=0.5) -> float:
    found = total = 0
    for (gt_boxes, gt_labels), (boxes, labels, scores) in zip(truth, detections, strict=True):
        top = sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:budget]
        for box, label in zip(gt_boxes, gt_labels, strict=True):
            total += 1
            found += any(iou_loop(boxes[j], box) >= thr
                         and (not class_aware or labels[j] == label) for j in top)
    return found / total


def random_frames(rng: np.random.Generator, n_frames: int):
    """Few classes (many same-class boxes), duplicates, near-0.5 jitter, wrong labels, spurious
    boxes, empty frames and score ties."""
    truth, detections = [], []
    for _ in range(n_frames):
        g = int(rng.integers(0, 5))
        corner = rng.uniform(0, 200, (g, 2))
        gt_boxes = np.hstack((corner, corner + rng.uniform(10, 80, (g, 2))))
        gt_labels = rng.integers(1, 4, g)
        boxes, labels = [], []
        for box, label in zip(gt_boxes, gt_labels, strict=True):
            for _ in range(int(rng.choice([0, 1, 1, 2]))):
                size = np.tile(box[2:] - box[:2], 2)
                moved = box + rng.normal(0, rng.choice([0.03, 0.15, 0.3]), 4) * size
                boxes.append([*np.minimum(moved[:2], moved[2:] - 1), *moved[2:]])
                labels.append(label if rng.random() > 0.2 else int(rng.integers(1, 5)))
        for _ in range(int(rng.integers(0, 3))):
            corner = rng.uniform(0, 200, 2)
            boxes.append([*corner, *(corner + rng.uniform(10, 80, 2))])
            labels.append(int(rng.integers(1, 5)))
        scores = np.round(rng.uniform(0, 1, len(boxes)), 1)  # ties on purpose
        truth.append(frame(gt_boxes, gt_labels))
        detections.append(frame(boxes, labels, scores))
    return truth, detections


# ---- hand-computed cases ------------------------------------------------------------------

def test_two_boxes_and_a_duplicate_give_ap_five_sixths():
    """TP, duplicate FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 → AP = 1/2 + 1/3."""
    truth = [frame([[0, 0, 9, 9], [20, 20, 29, 29]], [CUP, CUP])]
    dets = [frame([[0, 0, 9, 9], [0, 0, 9, 8], [20, 20, 29, 29]], [CUP] * 3, [0.9, 0.8, 0.7])]
    assert ap_of(truth, dets)[CUP] == pytest.approx(5 / 6, abs=TOL)


def test_precision_is_the_envelope_from_the_right():
    """FP, TP, TP on 2 boxes: precision 0, 1/2, 2/3; the envelope gives 2/3 at both recall
    steps (AP 2/3), the raw precision would give 1/2 * 1/2 + 1/2 * 2/3."""
    truth = [frame([[0, 0, 9, 9], [20, 20, 29, 29]], [CUP, CUP])]
    dets = [frame([[50, 50, 59, 59], [0, 0, 9, 9], [20, 20, 29, 29]], [CUP] * 3, [0.9, 0.8, 0.7])]
    assert ap_of(truth, dets)[CUP] == pytest.approx(2 / 3, abs=TOL)


def test_a_detection_takes_its_highest_iou_box():
    """The first detection overlaps box A (IoU 0.6) and box B (IoU 0.8): it takes B, so the
    second detection, which fits only B, is a duplicate: AP 1/2 (taking A would give 1)."""
    a, b = [0, 0, 99, 99], [40, 0, 139, 99]
    first = [30, 0, 129, 99]  # IoU with a: 70/130, with b: 90/110
    second = [45, 0, 139, 99]
    from scenellm.evaluation.boxes import bbox_overlaps
    overlaps = bbox_overlaps(np.array([first, second], float), np.array([a, b], float))
    assert 0.5 <= overlaps[0, 0] < overlaps[0, 1] and overlaps[1, 0] < 0.5 <= overlaps[1, 1]
    truth = [frame([a, b], [CUP, CUP])]
    dets = [frame([first, second], [CUP, CUP], [0.9, 0.8])]
    assert ap_of(truth, dets)[CUP] == pytest.approx(0.5, abs=TOL)


def test_a_later_detection_takes_a_box_still_unmatched():
    """A detection whose best box is taken matches the next unmatched box above 0.5 (the VOC
    devkit would count it false)."""
    a, b = [0, 0, 99, 99], [30, 0, 129, 99]
    truth = [frame([a, b], [CUP, CUP])]
    dets = [frame([a, [10, 0, 109, 99]], [CUP, CUP], [0.9, 0.8])]  # 2nd: IoU .82 with a, .54 b
    assert ap_of(truth, dets)[CUP] == pytest.approx(1.0, abs=TOL)


@pytest.mark.parametrize(("y2", "ap"), [(49, 1.0), (48, 0.0)])
def test_iou_half_with_the_plus_one_convention_matches_and_just_below_does_not(y2, ap):
    """[0, 0, 99, 49] covers 5000 of the box's 10000 pixels: IoU 0.5 (a match); y2 = 48: 0.49."""
    truth = [frame([[0, 0, 99, 99]], [CUP])]
    assert ap_of(truth, [frame([[0, 0, 99, y2]], [CUP], [0.5])])[CUP] == ap


def test_plus_one_pixels_decide_a_small_box():
    """[0, 0, 9, 4] against [0, 0, 9, 9]: 50 / 100 pixels with +1, 36 / 81 without."""
    truth = [frame([[0, 0, 9, 9]], [CUP])]
    assert ap_of(truth, [frame([[0, 0, 9, 4]], [CUP], [0.5])])[CUP] == 1.0


def test_a_wrong_label_is_a_false_positive_and_the_class_scores_zero():
    truth = [frame([[0, 0, 9, 9]], [CUP])]
    metrics = evaluate_detections(truth, [frame([[0, 0, 9, 9]], [BOOK], [0.9])], budgets=(1,))
    assert metrics.ap == {CUP: 0.0}
    assert metrics.recall == {1: 1.0} and metrics.class_recall == {1: 0.0}


def test_classes_without_ground_truth_are_left_out_of_map():
    truth = [frame([[0, 0, 9, 9], [20, 20, 39, 39]], [CUP, BOOK])]
    dets = [frame([[0, 0, 9, 9], [50, 50, 60, 60]], [CUP, 30], [0.9, 0.95])]
    metrics = evaluate_detections(truth, dets)
    assert metrics.ap == {BOOK: 0.0, CUP: 1.0} and metrics.mean_ap == 0.5
    assert metrics.gt_counts == {BOOK: 1, CUP: 1}
    assert metrics.summary(["x"] * 5 + ["book"] + ["x"] * 5 + ["cup"])["AP@0.5/cup"] == 1.0


def test_matches_stay_within_their_frame():
    truth = [frame([[0, 0, 9, 9]], [CUP]), frame(np.zeros((0, 4)), [])]
    dets = [frame(np.zeros((0, 4)), [], []), frame([[0, 0, 9, 9]], [CUP], [0.9])]
    metrics = evaluate_detections(truth, dets)
    assert metrics.ap == {CUP: 0.0} and metrics.recall[100] == 0.0


def test_recall_counts_only_the_frames_top_budget_detections():
    """The box is found only by the lowest-scoring of three detections."""
    truth = [frame([[0, 0, 9, 9]], [CUP])]
    dets = [frame([[50, 50, 59, 59], [60, 60, 69, 69], [0, 0, 9, 9]], [CUP] * 3,
                  [0.9, 0.8, 0.1])]
    metrics = evaluate_detections(truth, dets, budgets=(2, 3))
    assert metrics.recall == {2: 0.0, 3: 1.0} and metrics.class_recall == {2: 0.0, 3: 1.0}


def test_average_precision_of_a_perfect_ranking_is_one():
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == 1.0


def test_frames_of_truth_and_detections_must_pair_up():
    with pytest.raises(ValueError, match="same frames"):
        evaluate_detections([frame([[0, 0, 9, 9]], [CUP])], [])


# ---- against the loop ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_equals_the_loop_on_random_frames(seed):
    truth, dets = random_frames(np.random.default_rng(seed), n_frames=60)
    got, expected = ap_of(truth, dets), ap_loop(truth, dets)
    assert list(got) == list(expected)
    np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=0, atol=TOL)
    assert 0.05 < np.mean(list(got.values())) < 0.95  # neither trivial nor hopeless


@pytest.mark.parametrize("seed", [3, 4])
def test_recall_at_budgets_equals_the_loop_on_random_frames(seed):
    truth, dets = random_frames(np.random.default_rng(seed), n_frames=60)
    budgets = (1, 2, 3, 100)
    metrics = evaluate_detections(truth, dets, budgets=budgets)
    for b in budgets:
        assert metrics.recall[b] == pytest.approx(recall_loop(truth, dets, b, False), abs=TOL)
        assert metrics.class_recall[b] == pytest.approx(recall_loop(truth, dets, b, True),
                                                        abs=TOL)
    assert metrics.recall[1] < metrics.recall[100]
