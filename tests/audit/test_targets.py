"""TARGET forms: study trials (tagged child runs of a study parent) and the parsers."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.entities import Param

from scenellm.audit.checks import NOT_CHECKABLE, PASS
from scenellm.audit.recorded import unflatten
from scenellm.audit.report import audit
from scenellm.audit.targets import ALIAS, TRIAL, VERSION, resolve_target
from scenellm.config.load import flatten, load_params
from scenellm.errors import UserError
from scenellm.tracking.runs import Tracker, param_value


def make_trial(env, study: str, number: int) -> str:
    """A study parent holding the lineage and a trial child holding stages and params, the
    way the tune flow records them."""
    source = MlflowClient(env.tracking_uri).get_run(env.run_id).data.tags
    lineage = {
        k: v
        for k, v in source.items()
        if k in ("scenellm.git_commit", "scenellm.git_dirty", "scenellm.data_md5")
    }
    stages = {k: v for k, v in source.items() if k.startswith("scenellm.stage.")}
    tracker = Tracker(env.tracking_uri, f"study-{study}")
    parent = tracker.start_parent(f"study-{study}", {**lineage, "scenellm.study": study}, {})
    for n in range(number + 1):
        trial = tracker.start_child(
            parent, f"trial-{n}", {"scenellm.study": study, "scenellm.trial": str(n), **stages}
        )
        params = flatten(load_params(env.repo.params_dir))  # one level, dicts as JSON
        tracker.client.log_batch(
            trial, params=[Param(k, param_value(v)) for k, v in params.items()]
        )
        tracker.end(trial)
    return trial


@pytest.mark.slow
def test_a_study_trial_resolves_and_inherits_the_study_lineage(env):
    trial_run = make_trial(env, "tiny", 2)
    report = audit("study:tiny/trial:2", env.repo, log=False)
    assert report.target.kind == "trial" and report.recorded.run_id == trial_run
    assert set(report.recorded.inherited) == {"git_commit", "git_dirty", "data_md5"}
    got = {c.link: c.status for c in report.checks}
    assert got["git.commit"] == PASS and got["data.current"] == PASS
    assert all(got[f"stage.{s}.fingerprint"] == PASS for s in ("vqvae", "finetune"))
    assert got["stage.vqvae.run"] == NOT_CHECKABLE  # a trial has no child run per stage
    assert report.recorded.params_source == "run params" and report.exit_code == 0


@pytest.mark.slow
def test_missing_trial_is_a_user_error(env):
    with pytest.raises(UserError, match="no run is tagged"):
        resolve_target(MlflowClient(env.tracking_uri), "study:tiny/trial:7")


@pytest.mark.slow
def test_a_stage_child_run_stands_for_its_pipeline_run(env):
    client = MlflowClient(env.tracking_uri)
    child = client.search_runs(
        [client.get_run(env.run_id).info.experiment_id],
        f"tags.`mlflow.parentRunId` = '{env.run_id}' and tags.`scenellm.stage` = 'vqvae'",
    )[0]
    target = resolve_target(client, child.info.run_id)
    assert target.run_id == env.run_id and target.extra["stage"] == "vqvae"


def test_target_patterns():
    assert TRIAL.match("study:s-1/trial:12")["trial"] == "12"
    assert VERSION.match("scenellm/3")["version"] == "3"
    assert ALIAS.match("scenellm@champion")["alias"] == "champion"
    assert not VERSION.match("scenellm@3") and not ALIAS.match("a/b@c")


def test_unflatten_inverts_both_param_forms():
    assert unflatten({"a.b": 1, "a.c.d": 2, "e.f": [1]}) == {
        "a": {"b": 1, "c": {"d": 2}},
        "e": {"f": [1]},
    }
