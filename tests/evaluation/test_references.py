"""Box-only tree references: their features against hand-computed values, and that they
learn what a frequency table cannot."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from scenellm.evaluation.baseline import FrequencyBaseline
from scenellm.evaluation.references import BoxTrees, ObjectClassifier, pair_features


def batch_of(person: np.ndarray, obj: np.ndarray, classes: np.ndarray, frames=None, video=None):
    """A batch of P pairs, one person and one object node each (just the fields read)."""
    p = len(person)
    boxes = np.empty((2 * p, 4))
    boxes[0::2], boxes[1::2] = person, obj
    labels = np.empty(2 * p, dtype=np.int64)
    labels[0::2], labels[1::2] = 1, classes
    frames = np.arange(p) if frames is None else np.asarray(frames)
    return SimpleNamespace(
        boxes_norm=torch.tensor(boxes, dtype=torch.float32),
        pair_idx=torch.tensor(np.stack([np.arange(0, 2 * p, 2), np.arange(1, 2 * p, 2)], 1)),
        labels=torch.tensor(labels),
        is_person=torch.tensor(labels == 1),
        obj_feats=torch.zeros(2 * p, 2),
        video_of_pair=torch.tensor(np.zeros(p, int) if video is None else video),
        frame_of_pair=torch.tensor(frames),
        frame_pos=torch.arange(int(frames.max()) + 1),
    )


def test_geometry_features_match_hand_computed_values():
    person = np.array([[0.0, 0.0, 0.5, 0.5]])
    obj = np.array([[0.25, 0.25, 0.75, 0.5]])
    row = pair_features(batch_of(person, obj, np.array([7])))[0]
    assert row[0] == 7  # the class
    np.testing.assert_allclose(row[1:9], [0, 0, 0.5, 0.5, 0.25, 0.25, 0.75, 0.5], atol=1e-7)
    np.testing.assert_allclose(row[9:11], [(0.5 - 0.25) / 0.5, (0.375 - 0.25) / 0.5],
                               atol=1e-6)  # centre offsets in person widths / heights
    np.testing.assert_allclose(row[11:13], [np.log(1.0), np.log(0.5)], atol=1e-6)
    inter, union = 0.25 * 0.25, 0.25 + 0.125 - 0.25 * 0.25
    np.testing.assert_allclose(row[13:15], [inter / union, inter / 0.125], atol=1e-6)


def test_the_window_holds_the_same_object_in_neighbouring_frames():
    person = np.tile([[0.0, 0.0, 0.5, 0.5]], (3, 1))
    obj = np.array([[0.1, 0.1, 0.2, 0.2], [0.2, 0.2, 0.3, 0.3], [0.3, 0.3, 0.4, 0.4]])
    batch = batch_of(person, obj, np.array([5, 5, 9]), frames=[0, 1, 2])
    now = pair_features(batch)
    window = pair_features(batch, (-1, 1))
    d = now.shape[1] - 1  # geometry columns per frame
    previous, following = window[:, now.shape[1]:now.shape[1] + d], window[:, now.shape[1] + d:]
    np.testing.assert_allclose(previous[1], now[0, 1:])  # class 5 at frame 0
    assert np.isnan(previous[0]).all() and np.isnan(previous[2]).all()  # none / other class
    np.testing.assert_allclose(following[0], now[1, 1:])
    assert np.isnan(following[1]).all()


def test_trees_learn_a_geometric_rule_the_frequency_table_cannot():
    """spatial 'above' iff the object's centre is above the person's: one class, so the
    frequency table can only say 'half the time'; the trees read it off the boxes."""
    rng = np.random.default_rng(0)
    n = 2000
    person = np.column_stack([rng.uniform(0.2, 0.4, n), rng.uniform(0.3, 0.5, n)])
    person = np.hstack([person, person + 0.3])
    obj_y = rng.uniform(0.0, 0.9, n)
    obj = np.column_stack([rng.uniform(0, 0.8, n), obj_y, rng.uniform(0, 0.8, n) + 0.1,
                           obj_y + 0.1])
    above = ((obj[:, 1] + obj[:, 3]) / 2 < (person[:, 1] + person[:, 3]) / 2).astype(int)
    spatial = np.zeros((n, 6))
    spatial[:, 0] = above
    contacting = np.zeros((n, 17))
    contacting[:, 8] = 1
    attention = rng.integers(0, 3, n)
    feats = pair_features(batch_of(person, obj, np.full(n, 4)))
    train, test = slice(0, 1500), slice(1500, n)
    trees = BoxTrees().fit(feats[train], attention[train], spatial[train], contacting[train])
    tree_acc = ((trees.predict(feats[test])["spatial"][:, 0] > 0.5) == above[test]).mean()
    table = FrequencyBaseline().fit(np.full(1500, 4), attention[train], spatial[train],
                                    contacting[train])
    table_acc = ((table.predict(np.full(500, 4))["spatial"][:, 0] > 0.5) == above[test]).mean()
    assert tree_acc > 0.95 and table_acc < 0.65, (tree_acc, table_acc)
    # a predicate never positive in training scores 0, one always positive scores 1
    out = trees.predict(feats[test])
    assert (out["spatial"][:, 5] == 0).all() and (out["contacting"][:, 8] == 1).all()


def test_unlabelled_attention_pairs_are_left_out_of_the_attention_trees():
    feats = np.column_stack([np.full(40, 3.0), np.linspace(0, 1, 40)])
    attention = np.where(np.arange(40) < 20, 0, 2)
    attention[::5] = -100  # unlabelled
    trees = BoxTrees(max_iter=20).fit(feats, attention, np.zeros((40, 6)),
                                      np.zeros((40, 17)))
    assert list(trees.models["attention"][0].classes_) == [0, 2]


def test_the_fixed_classifier_labels_objects_and_keeps_the_person():
    rng = np.random.default_rng(1)
    feats = np.vstack([rng.normal(0, 1, (100, 2)) + [4, 0], rng.normal(0, 1, (100, 2)) - [4, 0]])
    labels = np.repeat([10, 20], 100)
    classifier = ObjectClassifier().fit(feats, labels)
    batch = SimpleNamespace(obj_feats=torch.tensor([[0.0, 0.0], [5.0, 0.0], [-5.0, 0.0]]),
                            is_person=torch.tensor([True, False, False]),
                            labels=torch.tensor([1, 20, 20]))
    out = classifier.outputs(batch, 37)
    assert out["labels"].tolist() == [1, 10, 20]
    assert out["object_logits"].shape == (3, 37)
    assert out["object_logits"][1].argmax() == 10


@pytest.mark.parametrize("window", [None, (-3, 2)])
def test_reference_outputs_have_the_models_shapes(window):
    person = np.tile([[0.0, 0.0, 0.5, 0.5]], (30, 1))
    obj = np.tile([[0.1, 0.1, 0.2, 0.2]], (30, 1)) + np.linspace(0, 0.3, 30)[:, None]
    batch = batch_of(person, obj, np.full(30, 4))
    feats = pair_features(batch, window)
    trees = BoxTrees(window=window, max_iter=10).fit(
        feats, np.arange(30) % 3, (np.arange(30)[:, None] % 2 == 0) * np.ones((30, 6)),
        np.zeros((30, 17)))
    out = trees.outputs(batch, {"labels": batch.labels})
    assert out["attention_logits"].shape == (30, 3)
    assert out["spatial_logits"].shape == (30, 6) and out["contacting_logits"].shape == (30, 17)


@pytest.mark.parametrize("window", [None, (-3, 2)])
def test_scoring_many_videos_in_one_call_gives_each_videos_own_numbers(window):
    """The evaluate stage scores 32 test videos per predict call: every video's outputs must
    be bit for bit those of scoring it alone (the window never reaches into a neighbour)."""
    rng = np.random.default_rng(2)

    def video(p):
        person = np.column_stack([rng.uniform(0, 0.4, p), rng.uniform(0, 0.4, p)])
        person = np.hstack([person, person + 0.5])
        obj = np.column_stack([rng.uniform(0, 0.7, p), rng.uniform(0, 0.7, p)])
        obj = np.hstack([obj, obj + 0.2])
        return batch_of(person, obj, rng.integers(2, 6, p), frames=np.arange(p) // 2)

    train = video(400)
    feats = pair_features(train, window)
    trees = BoxTrees(window=window, max_iter=20).fit(
        feats, rng.integers(0, 3, 400), rng.integers(0, 2, (400, 6)),
        rng.integers(0, 2, (400, 17)))
    batches = [video(p) for p in (7, 1, 12, 4)]
    outs = [{"labels": b.labels} for b in batches]
    together = trees.outputs_many(batches, outs)
    assert len(together) == len(batches)
    for batch, out, many in zip(batches, outs, together, strict=True):
        alone = trees.outputs(batch, out)
        for key in ("attention_logits", "spatial_logits", "contacting_logits"):
            assert many[key].shape[0] == len(batch.pair_idx)
            assert torch.equal(many[key], alone[key]), key
    assert trees.outputs_many([], []) == []
