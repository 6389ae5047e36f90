"""A study in one process on the tiny project: trials, shared stages, MLflow runs,
pruning, top-ups and refused joins."""

from __future__ import annotations

import json

import mlflow
import pytest
import yaml
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from scenellm.errors import UserError
from scenellm.search.optimize import run_worker
from scenellm.search.study import PARENT, TuneRequest, open_study
from scenellm.stages.base import SUCCESS

pytestmark = pytest.mark.slow


def stage_counts(trials, stage: str) -> int:
    """How many trials computed (did not reuse) ``stage``."""
    return sum(
        not t.user_attrs[f"stage.{stage}"]["reused"]
        for t in trials
        if f"stage.{stage}" in t.user_attrs
    )


def test_trials_complete_and_share_upstream_stages(studied, read_study):
    project, summary = studied
    study = read_study(project, "base")
    trials = study.get_trials()
    assert summary["counts"]["complete"] == 3 and summary["ran"] == [0, 1, 2]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert stage_counts(trials, "features") == 1 and stage_counts(trials, "prepare") == 1
    sizes = {t.params["vqvae.codebook_size"] for t in trials}
    assert stage_counts(trials, "vqvae") == len(sizes)
    stages = project.artifacts / "stages"
    assert len(list((stages / "features").glob(f"*/{SUCCESS}"))) == 1
    assert len(list((stages / "vqvae").glob(f"*/{SUCCESS}"))) == len(sizes)
    for t in trials:
        record = json.loads(
            (
                stages / "finetune" / t.user_attrs["stage.finetune"]["fingerprint"][:16] / SUCCESS
            ).read_text()
        )
        # the value is the best validation epoch, which the stage itself recorded
        assert t.value == pytest.approx(record["metrics"]["best_val_predcls_R@20"], abs=1e-12)
        assert t.value == max(t.intermediate_values.values())
        assert sorted(t.intermediate_values) == [0, 1]


def test_mlflow_parent_and_child_runs(studied, read_study):
    project, _ = studied
    study = read_study(project, "base")
    client = mlflow.MlflowClient(project.mlflow_tracking_uri)
    parent = client.get_run(study.user_attrs[PARENT])
    assert parent.data.tags["scenellm.study"] == "base"
    assert parent.data.tags["scenellm.data_md5"] == study.user_attrs["data_version"]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert json.loads(parent.data.params["space.lora.rank.choices"]) == [2, 4]
    for trial in study.get_trials():
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        tags = run.data.tags
        assert tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id == tags["scenellm.parent"]
        assert tags["scenellm.trial_state"] == "COMPLETE" and run.info.status == "FINISHED"
        assert (
            tags["scenellm.stage.finetune.fingerprint"]
            == trial.user_attrs["stage.finetune"]["fingerprint"]
        )
        for key, value in trial.params.items():
            assert run.data.params[key] == json.dumps(value)
        history = client.get_metric_history(run.info.run_id, "val_predcls_R_at_20")
        assert {m.step: m.value for m in history} == pytest.approx(trial.intermediate_values)
        assert run.data.metrics["objective"] == pytest.approx(trial.value)
        assert any(k.startswith("system/cpu_utilization") for k in run.data.metrics)


def test_rerun_tops_up_without_replaying_proposals(studied, read_study):
    project, _ = studied
    again = run_worker(TuneRequest("base", project), 3)
    assert again["ran"] == [] and again["counts"]["finished"] == 3
    more = run_worker(TuneRequest("base", project), 4)
    assert more["ran"] == [3] and more["counts"]["complete"] == 4
    trials = read_study(project, "base").get_trials()
    assert trials[3].params not in [t.params for t in trials[:3]]
    assert stage_counts(trials, "features") == 1


def _search(project, name: str, **changes) -> object:
    content = yaml.safe_load((project.params_dir / "search.yaml").read_text())
    content.update(changes)
    path = project.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_pruned_trials_stop_early_and_count_as_finished(studied, read_study):
    project, _ = studied
    # validation R@20 is at most 1, so every trial is pruned at its first epoch (other
    # fixed epochs than study "base", whose finetune outputs would otherwise be reused)
    search = _search(
        project,
        "prune",
        pruner={"name": "ThresholdPruner", "lower": 2.0},
        fixed={"finetune.phase_b_epochs": 2},
    )
    out = run_worker(TuneRequest("pruned", project, search_file=search), 2)
    assert out["counts"] == {**out["counts"], "pruned": 2, "complete": 0, "finished": 2}
    client = mlflow.MlflowClient(project.mlflow_tracking_uri)
    for trial in read_study(project, "pruned").get_trials():
        assert list(trial.intermediate_values) == [0]
        assert trial.user_attrs["pruned_at_epoch"] == 0
        assert "stage.finetune" not in trial.user_attrs  # the stage never completed
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["scenellm.trial_state"] == "PRUNED"
        assert run.info.status == "FINISHED"
    partials = list((project.artifacts / "stages" / "finetune").glob("*.partial/checkpoint"))
    assert len(partials) >= 2  # kept: the same params later resume from that epoch


def test_same_params_reuse_the_output_and_replay_its_epochs(studied, read_study):
    project, _ = studied
    first = read_study(project, "base").get_trials()[0]
    out = run_worker(TuneRequest("same", project), 1)  # same seed → same first proposal
    trial = read_study(project, "same").get_trials()[0]
    assert out["ran"] == [0] and trial.params == first.params
    assert trial.user_attrs["stage.finetune"]["reused"] is True
    assert trial.value == first.value and trial.intermediate_values == first.intermediate_values


def test_joining_with_another_definition_is_refused(studied):
    project, _ = studied
    changed = _search(project, "changed", fixed={"finetune.phase_c_epochs": 0})
    with pytest.raises(UserError, match="other params or another search.yaml"):
        open_study(TuneRequest("base", project, search_file=changed))
    with pytest.raises(UserError, match="other params"):
        open_study(TuneRequest("base", project, overrides=("lora.alpha=3.0",)))
    flipped = _search(
        project, "flipped", objective={"metric": "val_predcls_R@20", "direction": "minimize"}
    )
    with pytest.raises(UserError, match="maximizes its objective"):
        open_study(TuneRequest("base", project, search_file=flipped))


def test_unknown_objective_metric_fails_the_trial_with_the_known_keys(studied, read_study):
    project, _ = studied
    search = _search(project, "nometric", objective={"metric": "val_R@7"})
    with pytest.raises(UserError, match="val_R@7.*val_predcls_R@20"):
        run_worker(TuneRequest("nometric", project, search_file=search), 1)
    trial = read_study(project, "nometric").get_trials()[0]
    assert trial.state.name == "FAIL"
