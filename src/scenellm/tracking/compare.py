"""``scenellm runs compare``: params and metrics of MLflow runs side by side.

Runs are named by id, unique id prefix or run name (``train-…``), or taken as the last N
pipeline runs (``train-*`` parent runs, newest last). The comparison is also written as
MLflow's own runs table (the columns of :func:`mlflow.search_runs`: ``run_id``,
``params.*``, ``metrics.*``, ``tags.*``) in CSV, and the MLflow UI's compare page for the
same runs is named by URL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run

from scenellm.errors import UserError

PIPELINE_RUNS = "tags.mlflow.runName LIKE 'train-%'"


@dataclass
class Comparison:
    runs: list[Run]
    params: dict[str, list[str | None]]  # key → one value per run
    metrics: dict[str, list[float | None]]

    def differing_params(self) -> dict[str, list[str | None]]:
        return {k: v for k, v in self.params.items() if len(set(v)) > 1}

    def ui_url(self, host: str = "http://127.0.0.1:5000") -> str:
        ids = json.dumps([r.info.run_id for r in self.runs], separators=(",", ":"))
        exps = json.dumps(sorted({r.info.experiment_id for r in self.runs}),
                          separators=(",", ":"))
        return f"{host}/#/compare-runs?runs={ids}&experiments={exps}"


def find_run(client: MlflowClient, experiment_id: str, ref: str) -> Run:
    """A run by id, unique id prefix or run name (the newest of that name)."""
    by_name = client.search_runs([experiment_id], f"tags.mlflow.runName = '{ref}'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if by_name:
        return by_name[0]
    every = client.search_runs([experiment_id], max_results=50000)
    matches = [r for r in every if r.info.run_id.startswith(ref.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(f"run '{ref}' is ambiguous ({len(matches)} run ids start with it); "
                        "give more characters.")
    raise UserError(f"no run '{ref}' (by id, id prefix or name) in this MLflow experiment; "
                    "`scenellm runs compare --last 2` compares the latest pipeline runs.")


def last_runs(client: MlflowClient, experiment_id: str, n: int) -> list[Run]:
    """The last ``n`` pipeline (``train-*``) parent runs, oldest first."""
    runs = client.search_runs([experiment_id], PIPELINE_RUNS,
                              order_by=["attributes.start_time DESC"], max_results=n)
    if not runs:
        raise UserError("no pipeline run yet in this MLflow experiment; run `scenellm run`.")
    return runs[::-1]


def compare(runs: list[Run]) -> Comparison:
    """Every param and metric of ``runs`` (None where a run lacks it), sorted by key."""
    params = sorted({k for r in runs for k in r.data.params})
    metrics = sorted({k for r in runs for k in r.data.metrics})
    return Comparison(runs,
                      {k: [r.data.params.get(k) for r in runs] for k in params},
                      {k: [r.data.metrics.get(k) for r in runs] for k in metrics})


def write_table(comparison: Comparison, path: Path) -> Path:
    """The runs in :func:`mlflow.search_runs`'s columns, one row per run, as CSV (built from
    the runs in hand: ``search_runs`` reads the process-global tracking URI)."""
    import pandas as pd

    rows = [{"run_id": r.info.run_id, "experiment_id": r.info.experiment_id,
             "status": r.info.status, "artifact_uri": r.info.artifact_uri,
             "start_time": pd.to_datetime(r.info.start_time, unit="ms", utc=True),
             "end_time": pd.to_datetime(r.info.end_time, unit="ms", utc=True)
             if r.info.end_time else None,
             **{f"metrics.{k}": v for k, v in r.data.metrics.items()},
             **{f"params.{k}": v for k, v in r.data.params.items()},
             **{f"tags.{k}": v for k, v in r.data.tags.items()}}
            for r in comparison.runs]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def summary(comparison: Comparison) -> dict[str, Any]:
    return {"runs": [{"run_id": r.info.run_id, "run_name": r.info.run_name,
                      "status": r.info.status} for r in comparison.runs],
            "params": comparison.differing_params(), "metrics": comparison.metrics}
