"""The frequency baseline: counts, serialization, and recall through the evaluator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sttran_cases import PERSON_BOX, VOCAB, labels

from scenellm.evaluation import FrequencyBaseline, SceneGraphEvaluator


def _fitted(smoothing: float = 1.0) -> FrequencyBaseline:
    """Classes 2, 2, 2, 5; attention 0, 0, 1, 2; spatial 0, 0, 1, 2; contacting 0, 1, 1, 2."""
    return FrequencyBaseline().fit(
        np.array([2, 2, 2, 5]),
        np.array([0, 0, 1, 2]),
        np.eye(6)[[0, 0, 1, 2]],
        np.eye(17)[[0, 1, 1, 2]],
        smoothing=smoothing,
    )


def test_probabilities_are_smoothed_counts():
    pred = _fitted().predict(np.array([2, 5, 9]))  # 9: never seen
    attention = np.exp(pred["attention"])
    # class 2: counts (2, 1, 0) of 3 pairs -> (c + 1) / (3 + 3)
    np.testing.assert_allclose(attention[0], [3 / 6, 2 / 6, 1 / 6])
    np.testing.assert_allclose(attention[1], [1 / 4, 1 / 4, 2 / 4])  # class 5: (0, 0, 1) of 1
    np.testing.assert_allclose(attention[2], [3 / 7, 2 / 7, 2 / 7])  # all: (2, 1, 1) of 4
    # Bernoulli per predicate: (c + 1) / (n + 2)
    np.testing.assert_allclose(pred["spatial"][0, :3], [3 / 5, 2 / 5, 1 / 5])
    np.testing.assert_allclose(pred["contacting"][2, :4], [2 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert pred["spatial"].shape == (3, 6) and pred["contacting"].shape == (3, 17)
    unsmoothed = np.exp(_fitted(smoothing=0.0).predict(np.array([2]))["attention"])
    np.testing.assert_allclose(unsmoothed, [[2 / 3, 1 / 3, 0]])


def test_attention_log_probabilities_survive_the_evaluator_softmax():
    pred = _fitted().predict(np.array([2, 5, 9]))
    back = torch.softmax(torch.as_tensor(pred["attention"]), dim=1).numpy()
    np.testing.assert_allclose(back, np.exp(pred["attention"]), rtol=0, atol=1e-12)


def test_dict_round_trip_through_json():
    baseline = _fitted()
    again = FrequencyBaseline.from_dict(json.loads(json.dumps(baseline.to_dict())))
    query = np.array([5, 2, 9, 2])
    for kind, scores in baseline.predict(query).items():
        assert np.array_equal(again.predict(query)[kind], scores)
    assert FrequencyBaseline().predict(np.array([3]))["spatial"].tolist() == [[0.5] * 6]


def test_bad_attention_labels_are_refused():
    with pytest.raises(ValueError, match="attention"):
        FrequencyBaseline().fit(np.array([2]), np.array([3]), np.zeros((1, 6)), np.zeros((1, 17)))


def _class_dependent_video(rng: np.random.Generator, n_frames: int = 8):
    """Predicates follow the object class (with 20% noise); boxes are exact (PREDCLS)."""
    gt, rows, boxes, pairs = [], [], [], []
    for f in range(n_frames):
        frame = [{"person_bbox": np.array([PERSON_BOX])}]
        boxes.append([f, *PERSON_BOX])
        person = len(boxes) - 1
        for i in range(4):
            cls = int(rng.integers(2, 12))
            att, spa, con = cls % 3, cls % 6, cls % 17
            if rng.random() < 0.2:
                att, spa, con = rng.integers(3), rng.integers(6), rng.integers(17)
            box = [120.0 + 30 * i, 10.0, 145.0 + 30 * i, 40.0]
            frame.append(
                {
                    "class": cls,
                    "bbox": np.array(box),
                    "attention_relationship": labels(att),
                    "spatial_relationship": labels(spa),
                    "contacting_relationship": labels(con),
                }
            )
            boxes.append([f, *box])
            pairs.append((f, person, len(boxes) - 1))
            rows.append((cls, att, spa, con))
        gt.append(frame)
    return gt, np.array(boxes, dtype=np.float32), pairs, np.array(rows)


def _scores(boxes, pairs, classes, attention, spatial, contacting) -> dict:
    labels_ = np.ones(len(boxes), dtype=np.int64)
    labels_[[p[2] for p in pairs]] = classes
    as_f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    return {
        "boxes": torch.as_tensor(boxes),
        "labels": torch.as_tensor(labels_),
        "scores": torch.ones(len(boxes)),
        "im_idx": torch.tensor([p[0] for p in pairs]),
        "pair_idx": torch.tensor([[p[1], p[2]] for p in pairs]),
        "attention_distribution": as_f32(attention),
        "spatial_distribution": as_f32(spatial),
        "contacting_distribution": as_f32(contacting),
    }


def test_frequencies_beat_uniform_scores_when_predicates_follow_the_class():
    rng = np.random.default_rng(0)
    train = np.concatenate([_class_dependent_video(rng)[3] for _ in range(30)])
    baseline = FrequencyBaseline().fit(
        train[:, 0], train[:, 1], np.eye(6)[train[:, 2]], np.eye(17)[train[:, 3]]
    )
    recall = {}
    for name in ("frequency", "uniform"):
        ev = SceneGraphEvaluator("predcls", *VOCAB, constraint="with")
        test_rng = np.random.default_rng(1)
        for _ in range(10):
            gt, boxes, pairs, rows = _class_dependent_video(test_rng)
            if name == "frequency":
                p = baseline.predict(rows[:, 0])
                scores = (p["attention"], p["spatial"], p["contacting"])
            else:
                scores = (
                    np.zeros((len(rows), 3)),
                    np.full((len(rows), 6), 0.5),
                    np.full((len(rows), 17), 0.5),
                )
            ev.evaluate_scene_graph(gt, _scores(boxes, pairs, rows[:, 0], *scores))
        recall[name] = ev.summary()["R@20"]
    assert recall["frequency"] > 0.7
    assert recall["frequency"] > recall["uniform"] + 0.4
