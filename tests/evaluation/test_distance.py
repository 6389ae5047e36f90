"""Recall split by subject–object distance (SPADE's near / far at a third of the image width)
against a hand-made split and the per-frame STTran loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference_loop import BasicSceneGraphEvaluator
from sttran_cases import VOCAB
from sttran_synthetic import synthetic_video

from scenellm.evaluation import SceneGraphEvaluator
from scenellm.evaluation.distance import DistanceRecall, select_frames, split_by_distance

KS = (10, 20, 50, 100)


def _object(box, att=(0,), spa=(), con=()):
    return {"class": 3, "bbox": np.asarray(box, dtype=np.float64),
            "attention_relationship": torch.tensor(att, dtype=torch.long),
            "spatial_relationship": torch.tensor(spa, dtype=torch.long),
            "contacting_relationship": torch.tensor(con, dtype=torch.long)}


def test_split_puts_a_relation_far_only_beyond_a_third_of_the_width():
    person = {"person_bbox": np.array([[0.0, 0.0, 20.0, 20.0]])}  # centre (10, 10)
    near = _object([30.0, 0.0, 50.0, 20.0])  # centre (40, 10): 30 apart
    edge = _object([33.0, 10.0, 33.0, 10.0])  # degenerate box at (33, 10): 23 ≤ 69/3 = 23
    diagonal = _object([30.0, 20.0, 50.0, 40.0])  # centre (40, 30): √(30² + 20²) ≈ 36.1
    split = split_by_distance([[person, near, edge, diagonal]], width=69.0)  # W/3 = 23
    assert split["near"] == [[person, edge]]
    assert split["far"] == [[person, near, diagonal]]


def _frame_pred(pred: dict, f: int) -> dict:
    """The loop's own subset of one frame's predictions, renumbered from 0."""
    rows = [i for i in range(len(pred["boxes"])) if int(pred["boxes"][i, 0]) == f]
    index = {old: new for new, old in enumerate(rows)}
    pairs = [p for p in range(len(pred["im_idx"])) if int(pred["im_idx"][p]) == f]
    out = {k: pred[k][rows] for k in ("labels", "scores", "pred_labels", "pred_scores")}
    boxes = pred["boxes"][rows].clone()
    boxes[:, 0] = 0
    out.update({k: pred[k][pairs].clone() for k in ("attention_distribution",
                                                      "spatial_distribution",
                                                      "contacting_distribution")})
    out["boxes"] = boxes
    out["im_idx"] = torch.zeros(len(pairs), dtype=torch.long)
    out["pair_idx"] = torch.tensor([[index[int(a)], index[int(b)]] for a, b in
                                    pred["pair_idx"][pairs]], dtype=torch.long).reshape(-1, 2)
    return out


def _loop_bucket_recalls(videos, width, mode, far: bool) -> dict[int, list[float]]:
    """Per frame holding a relation of the bucket, the STTran loop's R@K on that frame
    alone, the bucket's objects chosen by an explicit distance computation."""
    loop = BasicSceneGraphEvaluator(mode, *VOCAB, constraint="with", semithreshold=0.9)
    for gt, pred in videos:
        for f, frame in enumerate(gt):
            px1, py1, px2, py2 = frame[0]["person_bbox"][0]
            kept = []
            for node in frame[1:]:
                x1, y1, x2, y2 = node["bbox"]
                d = math.hypot((x1 + x2) / 2 - (px1 + px2) / 2, (y1 + y2) / 2 - (py1 + py2) / 2)
                has = sum(len(node[k]) for k in ("attention_relationship",
                                                 "spatial_relationship",
                                                 "contacting_relationship"))
                if (d > width / 3) == far and has:
                    kept.append(node)
            if kept:
                loop.evaluate_scene_graph([[frame[0], *kept]], _frame_pred(pred, f))
    return loop.result_dict[mode + "_recall"]


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
def test_bucket_recalls_equal_the_loop_on_each_bucket_alone(mode):
    rng = np.random.default_rng(3)
    videos = [synthetic_video(rng, n_frames=int(rng.integers(2, 6)), p_empty=0.1)
              for _ in range(6)]
    width = 480.0  # boxes lie in [0, 560]: both buckets are well populated
    ours = DistanceRecall(lambda: SceneGraphEvaluator(mode, *VOCAB, constraint="with"))
    for gt, pred in videos:
        ours.evaluate_scene_graph(gt, pred, width)
    summary = ours.summary()
    for bucket, far in (("near", False), ("far", True)):
        expected = _loop_bucket_recalls(videos, width, mode, far)
        got = ours.frame_recalls(bucket)
        assert summary[bucket]["frames"] == len(expected[10]) > 5
        for k in KS:
            np.testing.assert_allclose(got[k], expected[k], rtol=0, atol=1e-12)
            assert summary[bucket][f"R@{k}"] == pytest.approx(np.mean(expected[k]), abs=1e-12)
    sums = ours.video_sums()
    assert sum(sums["far"]["frames"]) == summary["far"]["frames"]
    assert sum(sums["far"]["R@20"]) == pytest.approx(np.sum(ours.frame_recalls("far")[20]))


def test_selected_frames_are_renumbered_and_keep_their_pairs():
    rng = np.random.default_rng(0)
    _, pred = synthetic_video(rng, n_frames=4, p_empty=0.0)
    sub = select_frames(pred, [1, 3])
    assert sub["boxes"][:, 0].unique().tolist() == [0.0, 1.0]
    assert sub["im_idx"].unique().tolist() == [0, 1]
    frame_3 = pred["im_idx"] == 3
    np.testing.assert_array_equal(sub["attention_distribution"][sub["im_idx"] == 1],
                                  pred["attention_distribution"][frame_3])
    # a pair's boxes are the same boxes before and after renumbering
    np.testing.assert_array_equal(sub["boxes"][sub["pair_idx"][:, 1], 1:],
                                  pred["boxes"][pred["pair_idx"][:, 1]][
                                      (pred["im_idx"] == 1) | frame_3, 1:])
