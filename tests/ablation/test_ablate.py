"""`scenellm ablate` end to end on a tiny project: one command, the table with intervals,
an MLflow parent with a child per cell, and a re-run that reuses every cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest
import yaml
from tiny_project import make_project

from scenellm.data.synth import generate

pytestmark = pytest.mark.slow


def test_ablate_writes_the_table_and_reuses_finished_cells(tmp_path):
    data = tmp_path / "data"
    generate(data, seed=3, videos=10, frames=5, size=(96, 72))
    project = make_project(tmp_path / "project", data)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cmd = [sys.executable, "-m", "scenellm.cli.main", "ablate", "--grid", "temporal",
           "--seeds", "2"]
    first = subprocess.run(cmd, cwd=project.root, env=env, capture_output=True, text=True,
                           timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "6 cells (0 reused whole)" in first.stdout
    folder = project.home / "reports" / "ablate-temporal"
    table = json.loads((folder / "table.json").read_text())
    variants = list(yaml.safe_load((project.params_dir / "ablate.yaml").read_text())
                    ["grids"]["temporal"])
    rows = [r["row"] for r in table["rows"]]
    assert rows == [*variants, "ref: frequency", "ref: trees per frame",
                    "ref: trees t-3..t+2"]
    full, none = table["rows"][0], table["rows"][rows.index("temporal-none")]
    assert full["seeds"] == 2 and "diff" not in full["predcls_R@20"]
    stat = none["predcls_R@20"]
    assert stat["diff_low"] <= stat["diff"] <= stat["diff_high"]
    assert stat["diff"] == pytest.approx(stat["mean"] - full["predcls_R@20"]["mean"])
    for bucket in ("near", "far"):  # SPADE's distance split, with its own intervals
        far = none[f"sgcls_{bucket}_R@20"]
        assert far["low"] <= far["mean"] <= far["high"]
        assert far["diff_low"] <= far["diff"] <= far["diff_high"]
    assert full["s/epoch"]["seconds"] > 0 and rows[-1] == "ref: trees t-3..t+2"
    assert table["rows"][-1]["s/epoch"]["seconds"] is None
    assert (folder / "differences.png").stat().st_size > 5000
    assert "| temporal-none | 2 |" in (folder / "table.md").read_text()

    client = mlflow.MlflowClient(project.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("scenellm").experiment_id
    parent = client.search_runs(experiment, "attributes.run_name = 'ablate-temporal'")[0]
    children = client.search_runs(experiment,
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == sorted(
        f"{v}-seed{s}" for v in ("full", "temporal-none", "temporal-mean") for s in (0, 1))
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "table.md", "table.json", "differences.png"}

    again = subprocess.run(cmd, cwd=project.root, env=env, capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "6 cells (6 reused whole)" in again.stdout
    assert json.loads((folder / "table.json").read_text()) == table
