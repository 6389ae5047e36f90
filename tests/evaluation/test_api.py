"""The drop-in API: STTran's constructor, result_dict, print_stats; input handling."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from reference_loop import BasicSceneGraphEvaluator
from sttran_cases import VOCAB, gt_frame
from sttran_synthetic import synthetic_video

from scenellm.evaluation import SceneGraphEvaluator


@pytest.fixture
def video():
    return synthetic_video(np.random.default_rng(5), n_frames=6)


def test_print_stats_matches_sttran(video, capsys):
    loop = BasicSceneGraphEvaluator("sgcls", *VOCAB, constraint="semi", semithreshold=0.9)
    ours = SceneGraphEvaluator("sgcls", *VOCAB, constraint="semi")
    loop.evaluate_scene_graph(video[0], dict(video[1]))
    loop.print_stats()
    expected = capsys.readouterr().out
    ours.evaluate_scene_graph(*video)
    ours.print_stats()
    assert capsys.readouterr().out == expected
    assert expected.startswith("======================sgcls============================\nR@10: ")


def test_constraint_spellings_and_reset(video):
    results = []
    for constraint in (False, None, "with"):
        ev = SceneGraphEvaluator("predcls", *VOCAB, constraint=constraint)
        ev.evaluate_scene_graph(*video)
        results.append(ev.result_dict)
    assert results[0] == results[1] == results[2]
    ev.reset_result()
    assert ev.result_dict == {"predcls_recall": {10: [], 20: [], 50: [], 100: []}}
    with pytest.raises(ValueError, match="constraint"):
        SceneGraphEvaluator("predcls", *VOCAB, constraint="strict")
    with pytest.raises(ValueError, match="mode"):
        SceneGraphEvaluator("precls", *VOCAB)


def _same_gt(a: list, b: list) -> bool:
    return all(
        set(x) == set(y) and all(np.array_equal(np.asarray(x[k]), np.asarray(y[k])) for k in x)
        for fa, fb in zip(a, b, strict=True)
        for x, y in zip(fa, fb, strict=True)
    )


def test_inputs_are_not_modified(video):
    gt, pred = video
    pred["attention_distribution"].requires_grad_(True)  # straight from a model
    gt_before = copy.deepcopy(gt)
    pred_before = {k: v.detach().clone() for k, v in pred.items()}
    ev = SceneGraphEvaluator("sgcls", *VOCAB, constraint="no")
    ev.evaluate_scene_graph(gt, pred)
    assert ev.result_dict["sgcls_recall"][10]
    assert set(pred) == set(pred_before)  # STTran replaces attention_distribution
    assert all(torch.equal(pred[k].detach(), pred_before[k]) for k in pred)
    assert _same_gt(gt, gt_before)


def test_inputs_are_not_kept(video):
    """Scoring is deferred, but the caller may reuse its buffers right after the call."""
    gt, pred = video
    expected = SceneGraphEvaluator("sgcls", *VOCAB)
    expected.evaluate_scene_graph(gt, pred)
    expected = expected.result_dict
    assert np.mean(expected["sgcls_recall"][100]) > 0.1
    ev = SceneGraphEvaluator("sgcls", *VOCAB)
    ev.evaluate_scene_graph(gt, pred)
    for value in pred.values():
        value.zero_()
    for frame in gt:
        frame[0]["person_bbox"][:] = 0
    assert ev.result_dict == expected


def test_input_errors_are_named():
    ev = SceneGraphEvaluator("predcls", *VOCAB)
    gt, pred = synthetic_video(np.random.default_rng(1), n_frames=2)
    with pytest.raises(ValueError, match="frame 1 of the video has no ground-truth"):
        ev.evaluate_scene_graph([gt[0], gt_frame()], pred)
    bad = dict(pred, pair_idx=pred["pair_idx"] + 1000)
    with pytest.raises(ValueError, match="pair_idx"):
        ev.evaluate_scene_graph(gt, bad)
    gt[0][1]["spatial_relationship"] = torch.tensor([6])
    with pytest.raises(ValueError, match="outside its kind's range"):
        ev.evaluate_scene_graph(gt, pred)


def test_labels_as_lists_ints_and_arrays(video):
    gt, pred = video
    loose = copy.deepcopy(gt)
    for frame in loose:
        for obj in frame[1:]:
            obj["attention_relationship"] = int(obj["attention_relationship"][0])
            obj["spatial_relationship"] = obj["spatial_relationship"].tolist()
            obj["contacting_relationship"] = obj["contacting_relationship"].numpy()
    a, b = SceneGraphEvaluator("predcls", *VOCAB), SceneGraphEvaluator("predcls", *VOCAB)
    a.evaluate_scene_graph(gt, pred)
    b.evaluate_scene_graph(loose, {k: v.numpy() for k, v in pred.items()})
    assert a.result_dict == b.result_dict


def test_import_is_light():
    code = "import sys, scenellm.evaluation; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
