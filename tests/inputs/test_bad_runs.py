"""Bad input reaches neither a stage nor Prefect's retries: `scenellm stage prepare` and
`scenellm run` stop with exit 2 and one stderr line, leave no stage output or `.partial`,
read nothing outside the data root, and `run` checks its models and devices before any
stage starts (pre-flight)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from malformed_ag import KINDS, Site
from tiny_project import make_project

from scenellm.data.synth import generate
from scenellm.project import Project

pytestmark = pytest.mark.slow
IDS = [kind.name for kind in KINDS]
KINDS_FOR_COMMANDS = ["person bbox as a string", "symlink to /etc/passwd", "truncated PNG",
                      "frame_list.txt misses a frame"]


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("valid") / "ag"
    generate(root, seed=0, videos=6, frames=4, size=(64, 48))
    return root


@pytest.fixture
def project(valid, tmp_path) -> tuple[Project, Site]:
    from scenellm.data.ag import load_action_genome

    shutil.copytree(valid, tmp_path / "ag", symlinks=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "passwd").write_text("root:x:0:0\n")
    key = next(iter(load_action_genome(valid).split("train").values()))[0].key
    site = Site(tmp_path / "ag", tmp_path / "outside", key)
    return make_project(tmp_path / "project", site.root), site


def scenellm(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scenellm.cli.main", *args],
                          cwd=project.root, capture_output=True, text=True, timeout=600)


def assert_one_line_exit_2(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
    return lines[0]


def assert_no_stage_output(project: Project) -> None:
    stages = project.artifacts / "stages"
    left = [p for p in stages.rglob("*") if p.is_dir() and p.parent.parent == stages] \
        if stages.exists() else []
    assert left == [], left


@pytest.mark.parametrize("command", ["stage", "run"])
@pytest.mark.parametrize("name", KINDS_FOR_COMMANDS)
def test_malformed_data_stops_the_command_in_one_line(project, name, command):
    project, site = project
    KINDS[IDS.index(name)].damage(site)
    args = ["stage", "prepare"] if command == "stage" else ["run"]
    out = scenellm(project, *args)
    line = assert_one_line_exit_2(out)
    assert str(site.root) in line
    assert_no_stage_output(project)


@pytest.mark.parametrize(("override", "names"), [
    ("lora.target_modules=[query,nonexistent]", "lora.target_modules"),
    ("finetune.device=cuda:0", "finetune.device"),
    ("llm.path=/nonexistent/model", "llm.path"),
    ("detector.backbone=resnet", "detector.checkpoint"),
    pytest.param("llm.quantization=4bit", "llm.quantization", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="with CUDA, bitsandbytes may be here")),
])
def test_preflight_refuses_before_any_stage_runs(project, override, names):
    project, _ = project
    line = assert_one_line_exit_2(scenellm(project, "run", "--set", override))
    assert line.startswith(f"error: {names}: ")
    assert_no_stage_output(project)


def test_a_mistyped_data_root_is_an_error_and_generates_nothing(project, tmp_path):
    project, _ = project
    typo = tmp_path / "typo" / "data"
    line = assert_one_line_exit_2(scenellm(project, "run", "--set", f"data.root={typo}"))
    assert str(typo) in line
    assert not typo.exists() and not typo.parent.exists()
