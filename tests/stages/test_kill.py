"""Kill anywhere: SIGKILL each long stage at every kill point (``scenellm.faults``), run it
again, and the output is byte-identical to an uninterrupted run's, with nothing left over.

Each case runs ``scenellm stage NAME`` in a subprocess with ``SCENELLM_KILL_AT`` set, checks
that it died by SIGKILL at that point, then runs it again without."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_project import make_project

from scenellm.data.synth import generate
from scenellm.faults import ENV
from scenellm.stages.base import SUCCESS, tree_hash

pytestmark = pytest.mark.slow

# point@n: the n-th time the point is reached. Tiny params: detect 1 epoch, vqvae 3 epochs,
# finetune 1 + 1.
KILL_POINTS = {
    "features": ["features.detector_saved", "features.shard_written@1",
                 "features.shard_written@6", "atomic_write.before_replace@4",
                 "features.manifest_written", "stage.body_done", "stage.record_written"],
    "detect": ["checkpoint.written@1", "detect.head_saved", "detect.shard_written@2",
               "stage.record_written"],
    "vqvae": ["vqvae.best_saved@1", "checkpoint.written@1", "publish.exchanged@1",
              "checkpoint.written@3", "vqvae.model_saved", "vqvae.best_removed",
              "stage.body_done", "stage.record_written"],
    "finetune": ["checkpoint.written@1", "finetune.model_staged@1", "checkpoint.written@2",
                 "finetune.history_written", "stage.body_done", "stage.record_written"],
}
CASES = [(stage, point) for stage, points in KILL_POINTS.items() for point in points]
SETS = ["--set", "vqvae.epochs=3", "--set", "evaluate.modes=[predcls,sgcls,sgdet]"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    data = tmp_path_factory.mktemp("ag") / "data"
    generate(data, seed=5, videos=8, frames=5, size=(96, 72))
    project = make_project(tmp_path_factory.mktemp("project"), data)
    references = {}
    for stage in KILL_POINTS:  # in a child process, as the killed runs (same threads, RNG)
        out = subprocess.run(stage_cmd(stage), cwd=project.root, capture_output=True,
                             text=True, check=True)
        final = Path(json.loads(out.stdout)["output"])
        references[stage] = (final, json.loads((final / SUCCESS).read_text())["output_hash"])
    return project, references


def stage_cmd(stage: str) -> list[str]:
    return [sys.executable, "-m", "scenellm.cli.main", "stage", stage, "--json", *SETS]


def leftovers(stage_dir: Path) -> list[str]:
    return sorted(p.name for p in stage_dir.iterdir() if not p.name.endswith(".lock")
                  and not (p / SUCCESS).exists())


@pytest.mark.parametrize(("stage", "point"), CASES, ids=[f"{s}-{p}" for s, p in CASES])
def test_killed_stage_resumes_to_identical_output(project, stage, point):
    project, references = project
    final, expected = references[stage]
    shutil.rmtree(final)
    env = {**os.environ, ENV: point}
    killed = subprocess.run(stage_cmd(stage), cwd=project.root, env=env, capture_output=True,
                            text=True)
    assert killed.returncode == -signal.SIGKILL, \
        f"{point} was never reached (exit {killed.returncode}): {killed.stderr[-400:]}"
    rerun = subprocess.run(stage_cmd(stage), cwd=project.root, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-800:]
    assert json.loads(rerun.stdout)["output"] == str(final)
    assert tree_hash(final) == expected
    assert leftovers(final.parent) == []
