"""A service that dies under `scenellm run`: one line, no work lost, the next run records it."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from tiny_project import make_project

from scenellm.cli.run import service_fault
from scenellm.data.synth import generate
from scenellm.project import Project


def children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_text()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append((int(entry), cmd))
    return found


def latest_parent_tags(project: Project) -> dict[str, str]:
    client = mlflow.MlflowClient(project.mlflow_tracking_uri)
    runs = client.search_runs(client.get_experiment_by_name("scenellm").experiment_id,
                              "attributes.run_name LIKE 'train-%'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].data.tags


@pytest.mark.slow
def test_prefect_api_killed_mid_run_is_one_line_and_the_rerun_catches_up(tmp_path):
    data = tmp_path / "data"
    generate(data, seed=3, videos=8, frames=5, size=(96, 72))
    project = make_project(tmp_path / "project", data)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cmd = [sys.executable, "-m", "scenellm.cli.main", "run"]
    proc = subprocess.Popen(cmd, cwd=project.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not project.stage_dir("vqvae").exists() and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.1)
    apis = [pid for pid, cmdline in children(proc.pid) if "uvicorn" in cmdline]
    assert apis, "the run started no embedded Prefect API"
    os.kill(apis[0], 9)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Prefect API" in errors[0] and "kept stage outputs" in errors[0]
    progress = re.compile(r"^[a-z][a-z ]*: (\d+/\d+ |resumed )")  # stage progress lines
    noise = [line for line in err.splitlines() if not progress.match(line)]
    assert "Traceback" not in err and len(noise) <= 6, err[-2000:]
    assert any(project.stage_dir("features").glob("*/_SUCCESS.json"))  # work kept
    rerun = subprocess.run(cmd, cwd=project.root, env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    tags = latest_parent_tags(project)
    assert tags["scenellm.stage.prepare.reused"] == "true"
    assert tags["scenellm.stage.features.reused"] == "true"
    assert "scenellm.registered_version" in tags


def test_a_failing_mlflow_store_is_named_as_the_fault(tmp_path):
    try:
        try:
            raise sqlite3.OperationalError("unable to open database file")
        except sqlite3.OperationalError as exc:
            raise RuntimeError("log_batch failed") from exc
    except RuntimeError as outer:
        fault = service_fault(outer, Project(tmp_path))
    assert fault is not None and fault.startswith("the MLflow store sqlite:///")
    assert "unable to open database file" in fault
    assert service_fault(ValueError("a bug"), Project(tmp_path)) is None
