"""`scenellm run` (Prefect train flow, embedded stores) twice on a tiny project: the second
run does no stage work; lineage tags match the data md5, git commit and fingerprints; the
registry applies the champion/challenger rule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_project import make_project

from scenellm.data.synth import generate
from scenellm.data.version import dvc_md5
from scenellm.stages.registry import PIPELINE

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("flow")
    data = base / "data"
    generate(data, seed=11, videos=8, frames=5, size=(96, 72))
    root = base / "project"
    make_project(root, data)
    git(root, "init", "-q")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(base)}
    outs = [subprocess.run([BIN / "scenellm", "run"], cwd=root, capture_output=True,
                           text=True, timeout=900, env=env) for _ in range(2)]
    for out in outs:
        assert out.returncode == 0, out.stderr[-3000:]
    return root, data, outs


def client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{root / '.scenellm' / 'mlflow.db'}")


def parent_runs(root: Path):
    c = client(root)
    exp = c.get_experiment_by_name("scenellm")
    runs = c.search_runs([exp.experiment_id], "tags.mlflow.runName LIKE 'train-%'",
                         order_by=["attributes.start_time ASC"])
    return c, runs


def test_second_run_reuses_every_stage(two_runs):
    root, _, outs = two_runs
    assert outs[0].stdout.count("computed") >= 5
    assert "computed" not in outs[1].stdout.split("test split")[0].split("stages")[1]


def test_lineage_tags_match_data_commit_and_fingerprints(two_runs):
    root, data, _ = two_runs
    c, runs = parent_runs(root)
    assert len(runs) == 2
    tags = runs[0].data.tags
    assert tags["scenellm.data_md5"] == dvc_md5(data)
    assert tags["scenellm.git_commit"] == git(root, "rev-parse", "HEAD")
    stages = root / ".scenellm" / "artifacts" / "stages"
    for name in PIPELINE:
        record = json.loads(next((stages / name).glob("*/_SUCCESS.json")).read_text())
        assert tags[f"scenellm.stage.{name}.fingerprint"] == record["fingerprint"]
        assert tags[f"scenellm.stage.{name}.output_hash"] == record["output_hash"]
    assert tags["scenellm.prefect_flow_run_id"]
    children = c.search_runs([runs[0].info.experiment_id],
                             f"tags.mlflow.parentRunId = '{runs[0].info.run_id}'")
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == sorted(PIPELINE)


def test_rerun_registers_nothing_new(two_runs):
    root, _, outs = two_runs
    c, _ = parent_runs(root)
    first, second = (" ".join(out.stdout.split()) for out in outs)  # undo line wrapping
    assert "version 1 → champion" in first
    assert "version 1 → champion" in second and "already registered" in second
    assert [str(v.version) for v in c.search_model_versions("name='scenellm'")] == ["1"]


RETRAIN = ("import json; "
           "from scenellm.cli.run import load_flow, prefect_environment; "
           "from scenellm.project import Project; project = Project.discover(); "
           "prefect_environment(project); r = load_flow(project, 'retrain', 'retrain')(); "
           "print('REPORT' + json.dumps({k: r[k] for k in ('retrained', 'reason')} | "
           "{'alias': (r.get('registration') or {}).get('alias')}))")


def retrain_report(root: Path, base: Path) -> dict:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(base)}
    out = subprocess.run([sys.executable, "-c", RETRAIN], cwd=root, capture_output=True,
                         text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.split("REPORT")[-1].strip())


def test_retrain_only_when_data_changes_and_promotes_on_new_data(two_runs):
    root, data, _ = two_runs
    assert retrain_report(root, root.parent) == {
        "retrained": False, "reason": "data version unchanged since the champion was trained",
        "alias": None}
    shutil.rmtree(data)
    generate(data, seed=12, videos=8, frames=5, size=(96, 72))
    report = retrain_report(root, root.parent)
    assert report == {"retrained": True, "reason": "data changed", "alias": "champion"}
    c = client(root)
    champion = c.get_model_version_by_alias("scenellm", "champion")
    assert champion.tags["data_md5"] == dvc_md5(data)
