"""Several worker processes on one study, on the journal file and on PostgreSQL; a study
killed mid-trial and re-run. Each worker is ``scenellm tune --worker`` started as another
machine would start it (the study is created by whichever worker gets there first)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import mlflow
import optuna
import pytest
import yaml
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from scenellm.search.optimize import trial_counts
from scenellm.search.storage import open_storage
from scenellm.search.study import PARENT
from scenellm.stages.base import SUCCESS
from scenellm.tracking.runs import Tracker

pytestmark = pytest.mark.slow


def load(project, storage: str, name: str) -> optuna.Study:
    from scenellm.search.space import Heartbeat

    return optuna.load_study(study_name=name, storage=open_storage(storage, Heartbeat()))


def assert_accounted_for(project, study: optuna.Study, n: int, ran: list[list[int]]) -> None:
    """N finished trials (concurrent starts may add one), nothing running or failed, each
    trial run by exactly one worker, shared stages computed once, one MLflow parent."""
    counts = trial_counts(study)
    assert n <= counts["finished"] <= n + 1, counts
    assert counts["fail"] == counts["running"] == counts["waiting"] == 0
    trials = study.get_trials()
    numbers = sorted(x for worker in ran for x in worker)
    assert numbers == [t.number for t in trials]  # no trial run twice, none missed
    assert all(worker for worker in ran), ran  # every worker did some of the work
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)
    computed = {
        stage: sum(not t.user_attrs[f"stage.{stage}"]["reused"] for t in trials)
        for stage in ("prepare", "features", "vqvae")
    }
    sizes = {t.params["vqvae.codebook_size"] for t in trials}
    assert computed == {"prepare": 1, "features": 1, "vqvae": len(sizes)}
    stages = project.artifacts / "stages"
    assert len(list((stages / "features").glob(f"*/{SUCCESS}"))) == 1
    assert len(list((stages / "vqvae").glob(f"*/{SUCCESS}"))) == len(sizes)
    client = mlflow.MlflowClient(project.mlflow_tracking_uri)
    parents = client.search_runs(
        [client.get_experiment_by_name("scenellm").experiment_id],
        filter_string=f"tags.`scenellm.study` = '{study.study_name}'",
    )
    parents = [r for r in parents if MLFLOW_PARENT_RUN_ID not in r.data.tags]
    assert [r.info.run_id for r in parents] == [study.user_attrs[PARENT]]
    for t in trials:
        child = client.get_run(t.user_attrs["mlflow_run_id"])
        assert child.data.tags[MLFLOW_PARENT_RUN_ID] == study.user_attrs[PARENT]


@pytest.fixture(params=["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request, tmp_path) -> str:
    if request.param == "journal":
        return str(tmp_path / "shared.journal")
    return request.getfixturevalue("postgres_url")


def test_two_workers_share_one_study(make_project, tune_cli, storage):
    project = make_project()
    Tracker(project.mlflow_tracking_uri)  # a shared MLflow store exists before workers join
    args = ("--study", "two", "--trials", "5", "--storage", storage, "--json")
    procs = [
        subprocess.Popen(
            tune_cli(*args, "--worker", "--worker-index", str(i)),
            cwd=project.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]
    outs = [proc.communicate(timeout=170) for proc in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    summaries = [json.loads(out) for out, _ in outs]
    assert summaries[0]["parent_run_id"] == summaries[1]["parent_run_id"]
    study = load(project, storage, "two")
    assert_accounted_for(project, study, 5, [s["ran"] for s in summaries])


def test_killed_study_is_completed_by_a_rerun(make_project, tune_cli, read_study, tmp_path):
    project = make_project()
    search = yaml.safe_load((project.params_dir / "search.yaml").read_text())
    search["fixed"] = {"finetune.phase_b_epochs": 4, "finetune.phase_c_epochs": 2}
    (project.params_dir / "search.yaml").write_text(yaml.safe_dump(search))
    cmd = tune_cli("--worker", "--study", "killed", "--trials", "3", "--json")
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(cmd, cwd=project.root, stdout=log, stderr=subprocess.STDOUT)
    journal = project.home / "optuna.journal"
    deadline = time.monotonic() + 150
    victim = None
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if not journal.exists():
            continue
        try:
            trials = read_study(project, "killed").get_trials()
        except KeyError:  # study not created yet
            continue
        done = [t for t in trials if t.state.name == "COMPLETE"]
        mid = [t for t in trials if t.state.name == "RUNNING" and t.intermediate_values]
        if done and mid:
            victim = mid[0]
    assert victim is not None, (tmp_path / "killed.log").read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {
        t.number: t.value
        for t in read_study(project, "killed").get_trials()
        if t.state.name == "COMPLETE"
    }

    rerun = subprocess.run(cmd, cwd=project.root, capture_output=True, text=True, timeout=170)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    study = read_study(project, "killed")
    counts = trial_counts(study)
    assert counts["finished"] == 3 and counts["running"] == counts["waiting"] == 0
    trials = {t.number: t for t in study.get_trials()}
    assert {n: trials[n].value for n in before} == before  # completed trials are kept
    assert trials[victim.number].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == victim.params
    assert sorted(retries[0].intermediate_values) == list(range(6))
    client = mlflow.MlflowClient(project.mlflow_tracking_uri)
    dead_run = client.get_run(victim.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED"
    assert client.get_run(retries[0].user_attrs["mlflow_run_id"]).data.tags[
        "scenellm.retry_of"
    ] == str(victim.number)
