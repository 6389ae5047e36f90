"""A pipeline run under MLflow (:class:`PipelineRun`, what the train flow opens), twice on a
tiny project: the first makes a child run per stage, with system metrics on training
stages; the re-run reuses everything and makes none, recording on its parent which run
computed each output; both parents carry the headline metrics."""

from __future__ import annotations

import pytest
from tiny_project import make_project

from scenellm.config.load import load_params
from scenellm.data.synth import generate
from scenellm.stages.pipeline import TRAINING_STAGES, PipelineRun
from scenellm.stages.registry import PIPELINE
from scenellm.stages.summary import HEADLINE, REFERENCES

pytestmark = pytest.mark.slow


def record(project) -> PipelineRun:
    with PipelineRun.open(project, load_params(project.params_dir), "train-test") as run:
        for name in PIPELINE:
            run.stage(name)
    return run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline-run")
    generate(base / "data", seed=5, videos=8, frames=4, size=(96, 72))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCENELLM_HOME", str(base / "home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        project = make_project(base / "project", base / "data",
                               {"prepare": {"validate_data": False}})
        first, second = record(project), record(project)
    return first, second


def children(run: PipelineRun) -> dict[str, object]:
    found = run.tracker.client.search_runs(
        [run.tracker.experiment_id], f"tags.mlflow.parentRunId = '{run.parent_id}'")
    return {r.data.tags["scenellm.stage"]: r for r in found}


def test_first_run_has_a_finished_child_run_per_stage(two_runs):
    first, _ = two_runs
    runs = children(first)
    assert sorted(runs) == sorted(PIPELINE)
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert first.stage_runs == {name: runs[name].info.run_id for name in PIPELINE}


def test_a_rerun_that_reuses_every_stage_creates_no_stage_run(two_runs):
    first, second = two_runs
    assert all(r.reused for r in second.results.values())
    assert children(second) == {}
    assert second.stage_runs == dict.fromkeys(PIPELINE)
    tags = second.tracker.client.get_run(second.parent_id).data.tags
    for name in PIPELINE:
        assert tags[f"scenellm.stage.{name}.computed_in"] == first.stage_runs[name]
        assert tags[f"scenellm.stage.{name}.reused"] == "true"


def test_parent_runs_carry_the_headline_metrics_of_model_and_references(two_runs):
    for run in two_runs:
        metrics = run.tracker.client.get_run(run.parent_id).data.metrics
        evaluate = run.results["evaluate"].metrics
        for prefix in ("", *(f"{ref}_" for ref in REFERENCES)):
            key = f"{prefix}{HEADLINE[0]}"
            assert metrics[key.replace("@", "_at_")] == pytest.approx(evaluate[key])
        assert "best_val_predcls_R_at_20" in metrics


def test_training_stage_runs_carry_system_metrics(two_runs):
    first, _ = two_runs
    for name, run in children(first).items():
        has = any(k.startswith("system/cpu_utilization") for k in run.data.metrics)
        assert has == (name in TRAINING_STAGES), name
        if has:
            assert any(k.startswith("system/system_memory") for k in run.data.metrics)


def test_training_stage_runs_carry_their_history_plot(two_runs):
    first, _ = two_runs
    for name, run in children(first).items():
        files = {a.path for a in first.tracker.client.list_artifacts(run.info.run_id)}
        # detect trains nothing here: the project's evaluate.modes has no sgdet
        trained = name in TRAINING_STAGES and name != "detect"
        assert ("history.png" in files) == trained, (name, files)
