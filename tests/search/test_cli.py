"""``scenellm tune`` through the Prefect flow with an extra worker process, and
``scenellm study report``; user errors are one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def scenellm(*args: str) -> list[str]:
    return [sys.executable, "-m", "scenellm.cli.main", *args]


def test_bad_search_yaml_is_one_line(make_project):
    project = make_project()
    search = yaml.safe_load((project.params_dir / "search.yaml").read_text())
    search["space"]["lora.rnk"] = {"type": "categorical", "choices": [2]}
    (project.params_dir / "search.yaml").write_text(yaml.safe_dump(search))
    for mode in (["--worker"], []):  # plain worker, and the Prefect flow
        out = subprocess.run(
            scenellm("tune", *mode, "--study", "x", "--trials", "1"),
            cwd=project.root,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 2
        assert "lora.rnk" in out.stderr and "Traceback" not in out.stderr


def test_report_of_unknown_study_is_one_line(make_project):
    project = make_project()
    out = subprocess.run(
        scenellm("study", "report", "ghost"), cwd=project.root, capture_output=True, text=True
    )
    assert out.returncode == 2 and "study 'ghost' not found" in out.stderr


@pytest.mark.slow
def test_tune_flow_with_two_workers_then_report(make_project, read_study, tmp_path):
    project = make_project()
    shutil.copytree(REPO / "flows", project.root / "flows")  # the CLI runs <project>/flows
    out = subprocess.run(
        scenellm("tune", "--study", "flow", "--trials", "3", "--workers", "2", "--json"),
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["counts"]["finished"] in (3, 4) and summary["counts"]["fail"] == 0
    assert [w["returncode"] for w in summary["workers"]] == [0]
    assert (project.home / "studies" / "flow" / "worker-1.log").stat().st_size > 0
    pid = summary["workers"][0]["pid"]
    trials = read_study(project, "flow").get_trials()
    extra = [t.number for t in trials if t.user_attrs["worker"].endswith(f":{pid}")]
    assert extra and sorted(summary["ran"] + extra) == [t.number for t in trials]
    report = summary["report"]
    assert report["best"] is not None and len(report["trials"]) == summary["counts"]["finished"]
    assert any(f.endswith("optimization_history.png") for f in report["files"])

    again = subprocess.run(
        scenellm("study", "report", "flow", "--json", "--out", str(tmp_path / "r")),
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["best"] == report["best"]
    complete = sum(t.state.name == "COMPLETE" for t in trials)
    assert (tmp_path / "r" / "parallel_coordinate.png").exists() == (complete >= 3)
