"""The champion rule reads validation, never test: a model better on test but worse on
validation stays challenger, and its test score is reported with the version."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scenellm.config.schema import Params
from scenellm.evaluation import PRIMARY_METRIC, SELECTION_METRIC
from scenellm.project import Project
from scenellm.stages.base import StageResult
from scenellm.stages.pipeline import PipelineRun
from scenellm.tracking.runs import Tracker

MD5 = "c" * 32 + ".dir"


def pipeline_run(tmp_path: Path, tracker: Tracker, parent: str, name: str, val: float,
                 test: float) -> PipelineRun:
    finetuned = tmp_path / name
    (finetuned / "model").mkdir(parents=True)
    (finetuned / "model" / "config.json").write_text(json.dumps({"name": name}))
    features, prepare = tmp_path / "features", tmp_path / "prepare"
    features.mkdir(exist_ok=True)
    prepare.mkdir(exist_ok=True)
    (features / "manifest.json").write_text(json.dumps(
        {"detector_config": {"name": "small_cnn", "checkpoint": None}}))
    (features / "detector.safetensors").write_bytes(b"\x00" * 8)
    pd.DataFrame({"video_id": ["V.mp4"], "split": ["test"]}).to_parquet(
        prepare / "frames.parquet")
    results = {
        "prepare": StageResult("prepare", "p" * 16, prepare, False, 1.0, "h", {}),
        "features": StageResult("features", "f" * 16, features, False, 1.0, "h", {}),
        "finetune": StageResult("finetune", name * 8, finetuned, False, 1.0, "h",
                                {"best_" + SELECTION_METRIC: val}),
        "evaluate": StageResult("evaluate", "e" * 16, tmp_path, False, 1.0, "h",
                                {PRIMARY_METRIC: test}),
    }
    return PipelineRun(Project(tmp_path), Params(), tmp_path, MD5, tracker, parent,
                       results=results)


def test_better_on_test_but_worse_on_validation_is_not_promoted(
        tmp_path, tracking_uri, unique_name):
    tracker = Tracker(tracking_uri, unique_name)
    with tracker.parent_run("pipeline", {}, {}) as parent:
        first = pipeline_run(tmp_path, tracker, parent, "a", val=0.60, test=0.50).register(name=unique_name)
        second = pipeline_run(tmp_path, tracker, parent, "b", val=0.55, test=0.70).register(name=unique_name)
        third = pipeline_run(tmp_path, tracker, parent, "c", val=0.65, test=0.40).register(name=unique_name)
    assert first["alias"] == "champion"
    assert second["alias"] == "challenger" and SELECTION_METRIC in second["reason"]
    assert third["alias"] == "champion"  # better on validation wins, whatever test says
    version = tracker.client.get_model_version(unique_name, str(second["version"]))
    assert version.tags["metric_name"] == SELECTION_METRIC
    assert float(version.tags["metric"]) == 0.55
    assert float(version.tags["test.predcls_with_R_at_20"]) == 0.70
    assert second["test_metric"] == 0.70
