"""--reproduce: identical metrics on CPU from the recorded artifacts and from scratch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from mlflow import MlflowClient

from scenellm.audit.checks import FAIL, PASS
from scenellm.audit.report import audit
from scenellm.audit.reproduce import compare, leaves
from scenellm.stages.registry import PIPELINE


def test_compare_is_exact_at_zero_tolerance_and_bounded_above_it():
    recorded = {"a": {"R@20": 0.5, "per": [0.1, 0.2]}, "n": float("nan"), "s": "x"}
    same = compare(
        recorded, {"a": {"R@20": 0.5, "per": [0.1, 0.2]}, "n": float("nan"), "s": "x"}, 0.0
    )
    assert len(same) == 5 and all(r.ok for r in same)
    nudged = {"a": {"R@20": 0.5 + 1e-12, "per": [0.1, 0.2]}, "n": float("nan"), "s": "x"}
    rows = {r.key: r for r in compare(recorded, nudged, 0.0)}
    assert not rows["a.R@20"].ok and math.isclose(rows["a.R@20"].diff, 1e-12, rel_tol=1e-3)
    assert all(r.ok for r in compare(recorded, nudged, 1e-9))
    missing = {r.key: r for r in compare(recorded, {"a": {"R@20": 0.5}}, 1.0)}
    assert not missing["a.per.0"].ok and missing["a.per.0"].reproduced is None


def test_leaves_flattens_dicts_and_lists():
    assert leaves({"a": [1, {"b": 2}], "c": 3}) == {"a.0": 1, "a.1.b": 2, "c": 3}


@pytest.mark.slow
def test_evaluation_reproduces_identical_metrics(env):
    report = audit(env.run_id, env.repo, reproduce="eval", log=False)
    rep = report.reproduction
    assert rep.status == PASS, rep.detail
    assert len(rep.rows) > 100 and all(r.ok for r in rep.rows)
    if rep.device == "cpu":  # identical, to the last bit
        assert rep.tolerance == 0.0 and all(r.diff in (0.0, None) for r in rep.rows)
        assert rep.stages == {"evaluate": {"fingerprint": True, "output_hash": True}}
    assert report.failed == [] and report.exit_code == 0
    # The scratch home is gone and the project's outputs were not touched.
    assert not list(env.home.glob("artifacts/stages/evaluate/*.partial"))


@pytest.mark.slow
def test_full_pipeline_reproduces_identical_metrics(env):
    rep = audit(env.run_id, env.repo, reproduce="full", log=False).reproduction
    assert rep.status == PASS, rep.detail
    assert set(rep.stages) == set(PIPELINE)
    assert all(s["fingerprint"] for s in rep.stages.values())


@pytest.mark.slow
def test_a_changed_recorded_metric_fails_reproduction(env):
    """The reference is the evaluate run's metrics.json artifact: edit one number."""
    client = MlflowClient(env.tracking_uri)
    child = audit(env.run_id, env.repo, log=False).recorded.stages["evaluate"]
    path = Path(unquote(urlparse(client.get_run(child.child_run_id).info.artifact_uri).path))
    original = (path / "metrics.json").read_text()
    metrics = json.loads(original)
    metrics["model"]["predcls"]["with"]["R@20"] += 0.25
    (path / "metrics.json").write_text(json.dumps(metrics))
    try:
        rep = audit(env.run_id, env.repo, reproduce="eval", log=False).reproduction
    finally:
        (path / "metrics.json").write_text(original)
    assert rep.status == FAIL and "1 of" in rep.detail
    assert "model.predcls.with.R@20" in rep.detail
