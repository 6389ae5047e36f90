"""Detector training reports progress per batch (an epoch takes minutes on the default
data), then each epoch's loss and accuracy."""

from __future__ import annotations

import re

import pytest
from tiny_project import make_project

from scenellm.config.load import load_params
from scenellm.data.synth import generate
from scenellm.stages.pipeline import run_until

pytestmark = pytest.mark.slow


def test_detector_progress_counts_batches_and_ends_with_the_epoch_figures(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCENELLM_HOME", str(tmp_path / "home"))
    generate(tmp_path / "data", seed=3, videos=6, frames=4, size=(96, 72))
    project = make_project(tmp_path / "project", tmp_path / "data",
                           {"detector": {"epochs": 1, "batch_size": 4},
                            "prepare": {"validate_data": False}})
    run_until("features", load_params(project.params_dir), project)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("detector:")]
    first = re.match(r"detector: 0/(\d+) batches  epoch 1/1", lines[0])
    assert first, lines
    total = first.group(1)
    assert re.match(rf"detector: {total}/{total} batches  .*loss [\d.]+ · accuracy [\d.]+",
                    lines[-1]), lines
    assert sum(f"{total}/{total}" in ln for ln in lines) == 1  # no stale final line
