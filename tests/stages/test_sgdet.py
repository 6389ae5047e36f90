"""SGDET end to end on a tiny synthetic dataset: the detect stage's head and metrics, the
evaluate stage's SGDET table beside its references, and a detections file in the documented
format giving the same SGDET numbers as the built-in path on the same boxes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_project import make_project

from scenellm.config.load import load_params
from scenellm.data.detections import Detections
from scenellm.data.synth import generate
from scenellm.errors import UserError
from scenellm.stages.pipeline import run_until

pytestmark = pytest.mark.slow
MODES = {"evaluate": {"modes": ["predcls", "sgcls", "sgdet"]}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ag") / "data"
    generate(out, seed=5, videos=10, frames=5, size=(96, 72))
    return out


@pytest.fixture(scope="module")
def built_in(tmp_path_factory, dataset):
    project = make_project(tmp_path_factory.mktemp("built_in"), dataset,
                           {**MODES, "detect": {"epochs": 3, "batch_size": 4}})
    return project, run_until("evaluate", load_params(project.params_dir), project)


def metrics(result) -> dict:
    return json.loads((result.path / "metrics.json").read_text())


def test_detect_writes_head_detections_and_metrics_beside_the_prior(built_in):
    _, results = built_in
    detect = results["detect"].path
    assert (detect / "head.safetensors").is_file() and (detect / "head.json").is_file()
    found = metrics(results["detect"])
    for who in ("detector", "prior"):
        assert 0.0 <= found[who]["mAP@0.5"] <= 1.0
        assert 0.0 <= found[who]["recall@13"] <= 1.0  # budget 12 objects + the person
    detections = Detections.read(detect / "detections.npz")
    tested = json.loads((results["evaluate"].path / "per_video.json").read_text())
    assert sum(tested["frames"]["sgdet"]) == len(detections.frames())
    for key in detections.frames():
        frame = detections.for_frame(key)
        # each frame: at most one person, first, and at most `budget` objects
        assert (frame.labels[1:] != 1).all() and len(frame.labels) <= 13
        assert len(frame.labels) == 0 or frame.labels[0] == 1


def test_evaluate_scores_sgdet_for_the_model_and_every_reference(built_in):
    _, results = built_in
    evaluate = metrics(results["evaluate"])
    for who in ("model", "baseline", "trees", "trees_temporal"):
        for c in ("with", "semi", "no"):
            assert 0.0 <= evaluate[who]["sgdet"][c]["R@20"] <= evaluate[who]["sgdet"][c]["R@50"]
        # detected boxes can only lose triplets that ground-truth boxes find
        assert evaluate[who]["sgdet"]["no"]["R@100"] <= 1.0
    summary = json.loads((results["evaluate"].path / "summary.json").read_text())
    assert "sgdet_with_R@20" in summary and "trees_sgdet_with_R@20" in summary


def test_a_detections_file_gives_the_built_in_sgdet_numbers(built_in, tmp_path, dataset):
    project, results = built_in
    given = tmp_path / "given.npz"
    shutil.copy2(results["detect"].path / "detections.npz", given)
    other = make_project(tmp_path / "project", dataset,
                         {**MODES, "detect": {"source": "file", "file": str(given)}})
    # the same stage store: features, VQ-VAE and fine-tuning are reused, detect reads the file
    other_results = run_until("evaluate", load_params(other.params_dir), project)
    assert other_results["finetune"].reused and not other_results["detect"].reused
    assert not (other_results["detect"].path / "head.safetensors").exists()
    ours, theirs = metrics(results["evaluate"]), metrics(other_results["evaluate"])
    for who in ours:
        assert theirs[who]["sgdet"] == ours[who]["sgdet"]
    # a file whose content changes is a different input, though its path is the same
    frames = Detections.read(given)
    keys = list(frames.frames())
    shifted = [frames.for_frame(k) for k in keys]
    Detections.from_flat(keys, [len(f.labels) for f in shifted],
                         np.concatenate([f.boxes + 1.0 for f in shifted]),
                         np.concatenate([f.labels for f in shifted]),
                         np.concatenate([f.scores for f in shifted])).write(given)
    moved = run_until("detect", load_params(other.params_dir), project)
    assert moved["detect"].fingerprint != other_results["detect"].fingerprint


def test_a_missing_or_bad_detections_file_stops_before_any_stage(tmp_path, dataset):
    from scenellm.stages.preflight import preflight

    params = {**MODES, "detect": {"source": "file", "file": str(tmp_path / "nothing.npz")}}
    project = make_project(tmp_path / "project", dataset, params)
    with pytest.raises(UserError) as info:
        preflight(load_params(project.params_dir))
    assert "detect.file" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "nothing.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError) as info:
        preflight(load_params(project.params_dir))
    assert "nothing.npz" in str(info.value) and "\n" not in str(info.value)
    # the stage fingerprint refuses a missing file in one line too (dvc repro, `stage`)
    (tmp_path / "nothing.npz").unlink()
    with pytest.raises(UserError, match="detect.file"):
        run_until("detect", load_params(project.params_dir), project)


def test_without_sgdet_the_detect_stage_does_no_work(tmp_path, dataset):
    project = make_project(tmp_path / "project", dataset)
    results = run_until("detect", load_params(project.params_dir), project)
    out = results["detect"].path
    assert results["detect"].metrics == {"sgdet": 0.0}
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("_")) == \
        ["skipped.txt"]
