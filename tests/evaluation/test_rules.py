"""Hand-computed cases, one per rule of STTran's protocol."""

from __future__ import annotations

import numpy as np
import pytest
from reference_loop import BasicSceneGraphEvaluator
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
from scenellm.evaluation.boxes import bbox_overlaps, paired_iou

CUP_BOX = [150.0, 50.0, 199.0, 99.0]


def recalls(gt, pred, constraint="with", mode="predcls", **kwargs) -> list[list[float]]:
    """Per-frame recalls [[R@10, R@20, R@50, R@100] per frame], checked against the loop."""
    ours = SceneGraphEvaluator(mode, *VOCAB, constraint=constraint, **kwargs)
    loop = BasicSceneGraphEvaluator(
        mode, *VOCAB, constraint=constraint, semithreshold=kwargs.get("semithreshold", 0.9)
    )
    ours.evaluate_scene_graph(gt, pred)
    loop.evaluate_scene_graph(gt, dict(pred))
    got = ours.result_dict[mode + "_recall"]
    assert got == loop.result_dict[mode + "_recall"]
    return [list(r) for r in zip(*got.values(), strict=True)]


def cup_video(
    pair=(0, 1),
    attention="looking_at",
    spatial=("in_front_of",),
    contacting=("holding",),
    cup_box=CUP_BOX,
    spatial_probs=None,
    contacting_probs=None,
):
    """One frame: a person holding a cup in front of them; one predicted pair."""
    gt = [gt_frame(gt_object(CUP, CUP_BOX, "looking_at", ["in_front_of"], ["holding"]))]
    pred = prediction(
        boxes=[(0, PERSON_BOX, 1), (0, cup_box, CUP)],
        pairs=[(0, *pair)],
        attention=[one_hot_logits(ATT[attention])],
        spatial=[peaked([SPA[s] for s in spatial], 6) if spatial_probs is None else spatial_probs],
        contacting=[
            peaked([CON[c] for c in contacting], 17)
            if contacting_probs is None
            else contacting_probs
        ],
    )
    return gt, pred


def test_spatial_triplets_run_object_to_person():
    # Right spatial predicate only: its row is the pair reversed (cup -> person), as in GT.
    gt, pred = cup_video(attention="unsure", contacting=("touching",))
    assert recalls(gt, pred) == [[1 / 3] * 4]
    # The pair given as (cup, person): every predicate right, every triplet reversed.
    gt, pred = cup_video(pair=(1, 0))
    assert recalls(gt, pred) == [[0.0] * 4]
    gt, pred = cup_video()
    assert recalls(gt, pred) == [[1.0] * 4]


def test_iou_counts_the_extra_pixel():
    # [0, 0, 9, 9] vs [0, 0, 9, 4]: 50 / 100 = 0.5 with +1 pixel, 36 / 81 < 0.5 without.
    assert paired_iou(np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 4]]))[0] == 0.5
    assert bbox_overlaps(
        np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 3], [20, 20, 30, 30]])
    ).tolist() == [[0.4, 0.0]]
    gt, pred = cup_video(cup_box=[150.0, 50.0, 199.0, 74.0])  # 50 x 25 of 50 x 50: IoU 0.5
    assert recalls(gt, pred) == [[1.0] * 4]  # IoU >= 0.5 counts
    gt, pred = cup_video(cup_box=[150.0, 50.0, 199.0, 73.0])  # 24 / 50 rows: IoU 0.48
    assert recalls(gt, pred) == [[0.0] * 4]


@pytest.mark.parametrize("prob, expected", [(0.91, 2 / 3), (0.89, 1 / 3)])
def test_semi_keeps_spatial_scores_above_threshold(prob, expected):
    spatial = np.full(6, 0.1)
    spatial[SPA["in_front_of"]] = prob
    contacting = np.full(17, 0.2)  # no contacting score reaches 0.9: holding is missed
    gt, pred = cup_video(spatial_probs=spatial, contacting_probs=contacting)
    assert recalls(gt, pred, constraint="semi") == [[expected] * 4]
    assert recalls(gt, pred, constraint="semi", semithreshold=0.85) == [[2 / 3] * 4]
    assert recalls(gt, pred, constraint="with") == [[2 / 3] * 4]  # argmax of 0.2s: carrying


def test_semi_predicts_every_label_above_threshold():
    gt = [gt_frame(gt_object(CUP, CUP_BOX, "looking_at", ["in_front_of", "beneath"], ["holding"]))]
    _, pred = cup_video(spatial=("in_front_of", "beneath"))  # both spatial scores 0.95
    assert recalls(gt, pred, constraint="semi") == [[1.0] * 4]
    assert recalls(gt, pred, constraint="with") == [[0.75] * 4]  # one spatial label per pair


def _crowded_frame(n_low: int):
    """Person + cup (in GT: looking_at, holding) + 3 spurious books; 4 x 26 positive cells.

    The cup's ``holding`` cell scores 0.3; ``n_low`` other cells score 0.1, the rest of the
    spatial / contacting cells 0.5..0.95, attention cells 0.96 (cup's looking_at), 1/3
    (books) or 0.018: ``101 - n_low`` cells beat ``holding``.
    """
    gt = [gt_frame(gt_object(CUP, CUP_BOX, "looking_at", [], ["holding"]))]
    others = np.linspace(0.5, 0.95, 91)
    others[:n_low] = 0.1
    values = iter(others)
    spatial, contacting = [], []
    for pair in range(4):
        spatial.append([next(values) for _ in range(6)])
        contacting.append(
            [0.3 if (pair, j) == (0, CON["holding"]) else next(values) for j in range(17)]
        )
    boxes = [(0, PERSON_BOX, 1), (0, CUP_BOX, CUP)] + [
        (0, [300.0 + 40 * i, 0.0, 330.0 + 40 * i, 30.0], BOOK) for i in range(3)
    ]
    attention = [one_hot_logits(ATT["looking_at"], 4.0)] + [np.zeros(3)] * 3
    pred = prediction(boxes, [(0, 0, k) for k in range(1, 5)], attention, spatial, contacting)
    return gt, pred


@pytest.mark.parametrize("n_low, r100", [(1, 0.5), (2, 1.0)])
def test_no_constraint_keeps_the_top_100_cells(n_low, r100):
    gt, pred = _crowded_frame(n_low)
    att = pred["attention_distribution"].softmax(1).numpy()
    cells = np.concatenate(
        (
            att.ravel(),
            pred["spatial_distribution"].numpy().ravel(),
            pred["contacting_distribution"].numpy().ravel(),
        )
    )
    assert (cells > np.float32(0.3)).sum() == 101 - n_low  # holding ranks 102 - n_low
    assert recalls(gt, pred, constraint="no") == [[0.5, 0.5, 0.5, r100]]


def test_frame_without_predictions_scores_zero():
    gt, pred = cup_video()
    gt = gt + gt  # frame 1: same ground truth, no predicted pair
    assert recalls(gt, pred) == [[1.0] * 4, [0.0] * 4]
    ours = SceneGraphEvaluator("predcls", *VOCAB)
    ours.evaluate_scene_graph(gt, pred)
    assert ours.summary()["R@20"] == 0.5


def test_ties_rank_by_sttran_list_order():
    """Four identical pairs: 12 predictions in three tied blocks (attention, spatial,
    contacting). At K = 10 only the first two contacting rows, of pairs 0 and 1, count; the
    GT contacting triplets belong to objects 2 and 3. (STTran's unstable sort may pick any.)"""
    objects = [
        gt_object(
            CUP,
            [150.0, 20.0 + 45 * i, 190.0, 60.0 + 45 * i],
            "looking_at",
            [],
            ["holding"] if i >= 2 else [],
        )
        for i in range(4)
    ]
    boxes = [(0, PERSON_BOX, 1)] + [(0, list(o["bbox"]), CUP) for o in objects]
    pred = prediction(
        boxes,
        [(0, 0, k) for k in range(1, 5)],
        [one_hot_logits(ATT["looking_at"])] * 4,
        [peaked([SPA["above"]], 6, 0.8)] * 4,
        [peaked([CON["holding"]], 17, 0.7)] * 4,
    )
    ours = SceneGraphEvaluator("predcls", *VOCAB)
    ours.evaluate_scene_graph([gt_frame(*objects)], pred)
    assert [v[0] for v in ours.result_dict["predcls_recall"].values()] == [4 / 6, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("constraint", ["with", "semi", "no"])
def test_video_without_any_pair_scores_zero(constraint):
    gt, pred = cup_video()
    for key in (
        "im_idx",
        "pair_idx",
        "attention_distribution",
        "spatial_distribution",
        "contacting_distribution",
    ):
        pred[key] = pred[key][:0]
    assert recalls(gt + gt, pred, constraint=constraint) == [[0.0] * 4] * 2
