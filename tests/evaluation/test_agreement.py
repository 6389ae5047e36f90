"""The vectorized evaluator against the per-frame STTran loop on seeded random videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_loop import BasicSceneGraphEvaluator
from sttran_cases import VOCAB
from sttran_synthetic import synthetic_video

from scenellm.evaluation import SceneGraphEvaluator

KS = (10, 20, 50, 100)


def _videos(seed: int, n: int) -> list:
    """Random videos (jitter around IoU 0.5, wrong labels, spurious boxes, dropped pairs,
    empty frames), with variations in how STTran's fields come."""
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(n):
        gt, pred = synthetic_video(
            rng,
            n_frames=int(rng.integers(1, 7)),
            p_empty=0.15,
            p_mislabel=0.3,
            shuffle_pairs=i % 2 == 1,
        )
        if i % 3 == 0:  # STTran's own im_idx is a float tensor
            pred["im_idx"] = pred["im_idx"].float()
        if i % 5 == 0 and len(pred["pair_idx"]):  # a pair of no frame: STTran never reads it
            for key in ("im_idx", "pair_idx", "attention_distribution"):
                pred[key] = torch.cat((pred[key], pred[key][:1]))
            pred["im_idx"][-1] = len(gt)
            for key in ("spatial_distribution", "contacting_distribution"):
                pred[key] = torch.cat((pred[key], pred[key][:1]))
        videos.append((gt, pred))
    return videos


@pytest.fixture(scope="module")
def videos() -> list:
    return _videos(seed=7, n=90)


@pytest.mark.parametrize("mode", ["predcls", "sgcls"])
@pytest.mark.parametrize("constraint", ["with", "semi", "no"])
def test_recalls_equal_the_loop(videos, mode, constraint):
    loop = BasicSceneGraphEvaluator(mode, *VOCAB, constraint=constraint, semithreshold=0.9)
    ours = SceneGraphEvaluator(mode, *VOCAB, constraint=constraint)
    ours.flush_frames = 64  # several batches, so batch boundaries are exercised too
    for gt, pred in videos:
        loop.evaluate_scene_graph(gt, dict(pred))
        ours.evaluate_scene_graph(gt, pred)
    expected = loop.result_dict[mode + "_recall"]
    got = ours.result_dict[mode + "_recall"]
    assert len(got[10]) == sum(len(gt) for gt, _ in videos)
    for k in KS:
        np.testing.assert_allclose(got[k], expected[k], rtol=0, atol=1e-12)
    assert 0.05 < np.mean(got[100]) < 0.95  # the cases are neither trivial nor hopeless

    summary = ours.summary()
    seen = loop.mean_recall_count > 0
    assert summary["frames"] == len(expected[10])
    for k in KS:
        assert summary[f"R@{k}"] == pytest.approx(np.mean(expected[k]), abs=1e-12)
        tempura = loop.mean_recall_hit[k][seen] / loop.mean_recall_count[seen]
        assert summary[f"mR@{k}"] == pytest.approx(tempura.mean(), abs=1e-12)
        per_frame = [np.mean(r) for r in loop.frame_recalls[k] if r]
        assert summary[f"mR@{k}_frame"] == pytest.approx(np.mean(per_frame), abs=1e-12)
        names = [VOCAB[1][p] for p in np.flatnonzero(seen)]
        assert list(summary["per_predicate"][k]) == names
        np.testing.assert_allclose(list(summary["per_predicate"][k].values()), tempura, atol=1e-12)


def test_one_call_per_video_equals_one_batch(videos):
    """Where the queue is cut does not change any frame's recall."""
    results = []
    for flush_frames in (1, 10_000):
        ours = SceneGraphEvaluator("sgcls", *VOCAB, constraint="no")
        ours.flush_frames = flush_frames
        for gt, pred in videos[:40]:
            ours.evaluate_scene_graph(gt, pred)
        results.append(ours.result_dict["sgcls_recall"])
    assert results[0] == results[1]
