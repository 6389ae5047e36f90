"""``scenellm study list``: the studies of a storage, with their trials and best value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from scenellm.project import Project
from scenellm.search.optimize import trial_counts
from scenellm.search.space import Heartbeat
from scenellm.search.storage import display, is_url, open_storage, resolve_target
from scenellm.search.study import DATA, METRIC, PARENT


def list_studies(project: Project, storage: str | None = None) -> dict[str, Any]:
    """``{"storage", "studies": [{name, direction, metric, trials per state, best value
    and trial, started, data version, MLflow parent run}]}``, oldest study first."""
    target = resolve_target(storage, project)
    if not is_url(target) and not Path(target).exists():
        return {"storage": display(target), "studies": []}
    backend = open_storage(target, Heartbeat())
    rows = []
    for summary in optuna.get_all_study_summaries(backend, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=backend)
        counts = trial_counts(study)
        best = study.best_trial if counts["complete"] else None
        rows.append({
            "name": summary.study_name,
            "direction": summary.direction.name.lower(),
            "metric": study.user_attrs.get(METRIC),
            "trials": {k: counts[k] for k in ("complete", "pruned", "fail", "running")},
            "best_value": best.value if best else None,
            "best_trial": best.number if best else None,
            "started": summary.datetime_start.isoformat(timespec="seconds")
            if summary.datetime_start else None,
            "data_version": study.user_attrs.get(DATA),
            "mlflow_parent_run_id": study.user_attrs.get(PARENT),
        })
    rows.sort(key=lambda r: r["started"] or "")
    return {"storage": display(target), "studies": rows}
