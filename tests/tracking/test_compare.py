"""``scenellm runs compare``'s library: runs found by id, prefix or name, the last N
pipeline runs, params and metrics side by side, MLflow's runs-table columns in CSV."""

from __future__ import annotations

import pandas as pd
import pytest

from scenellm.errors import UserError
from scenellm.tracking.compare import compare, find_run, last_runs, write_table
from scenellm.tracking.runs import Tracker


@pytest.fixture
def three_runs(tracking_uri: str, unique_name: str):
    tracker = Tracker(tracking_uri, unique_name)
    ids = []
    for n, rank in enumerate((4, 8, 8)):
        run_id = tracker.start_parent(f"train-{n}", {}, {"lora": {"rank": rank}, "seed": 0})
        tracker.log_metrics(run_id, {"predcls_with_R@20": 0.1 * (n + 1)})
        ids.append(run_id)
    tracker.start_child(ids[-1], "evaluate")  # not a pipeline run
    return tracker, ids


def test_last_runs_are_the_newest_pipeline_runs_oldest_first(three_runs):
    tracker, ids = three_runs
    got = last_runs(tracker.client, tracker.experiment_id, 2)
    assert [r.info.run_id for r in got] == ids[1:]


def test_runs_are_found_by_name_and_id_prefix(three_runs):
    tracker, ids = three_runs
    assert find_run(tracker.client, tracker.experiment_id, "train-1").info.run_id == ids[1]
    assert find_run(tracker.client, tracker.experiment_id, ids[2][:10]).info.run_id == ids[2]
    with pytest.raises(UserError, match="no run 'ghost'"):
        find_run(tracker.client, tracker.experiment_id, "ghost")


def test_comparison_lines_up_values_and_keeps_only_differing_params(three_runs, tmp_path):
    tracker, ids = three_runs
    runs = [tracker.client.get_run(i) for i in ids]
    comparison = compare(runs)
    assert comparison.metrics["predcls_with_R_at_20"] == pytest.approx([0.1, 0.2, 0.3])
    assert comparison.differing_params() == {"lora.rank": ["4", "8", "8"]}
    assert "seed" in comparison.params
    assert f'runs=["{ids[0]}","{ids[1]}","{ids[2]}"]' in comparison.ui_url()
    table = pd.read_csv(write_table(comparison, tmp_path / "c.csv"))
    assert list(table.run_id) == ids
    assert {"params.lora.rank", "metrics.predcls_with_R_at_20", "tags.mlflow.runName",
            "status", "start_time"} <= set(table.columns)
