"""The Prefect ``predict`` flow: shards of videos written atomically, a re-run recomputes
only the shards that are missing, the joined table equals what evaluate scored, and MLflow
records the model version used."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # two flow runs, each starting Prefect's ephemeral API


def run_flow(champion, out) -> None:
    done = subprocess.run([sys.executable, "flows/predict.py", "--data", str(champion.data),
                           "--shard-size", "3", "--out", str(out)], cwd=champion.project.root,
                          env=champion.env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def predict_runs(champion) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(champion.tracking_uri)
    experiment = client.get_experiment_by_name("scenellm")
    return client.search_runs([experiment.experiment_id], "tags.`scenellm.kind` = 'predict'",
                              order_by=["attributes.start_time ASC"])


def test_flow_resumes_shards_and_records_the_model_version(champion, tmp_path):
    out = tmp_path / "batch"
    run_flow(champion, out)
    shards = sorted((out / "shards").glob("shard-*.parquet"))
    assert len(shards) == 3  # 8 videos in shards of 3
    first = pd.read_parquet(out / "predictions.parquet")
    assert sorted(first["video"].unique()) == sorted(
        pd.read_parquet(champion.prepare / "frames.parquet")["video_id"].unique())
    for video in champion.test_videos():
        pd.testing.assert_frame_equal(first[first["video"] == video].reset_index(drop=True),
                                      champion.scored(video, "predcls"), check_exact=True)
    kept = {p: p.stat().st_mtime_ns for p in shards[1:]}
    shards[0].unlink()
    run_flow(champion, out)
    assert {p: p.stat().st_mtime_ns for p in shards[1:]} == kept  # finished shards untouched
    assert shards[0].is_file()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions.parquet"), first)
    runs = predict_runs(champion)[-2:]
    assert [(r.data.metrics["shards_computed"], r.data.metrics["shards_reused"])
            for r in runs] == [(3, 0), (1, 2)]
    for run in runs:
        assert run.data.tags["scenellm.model_version"] == str(champion.version)
        assert run.data.tags["scenellm.model_name"] == "scenellm"
        assert run.info.status == "FINISHED"
