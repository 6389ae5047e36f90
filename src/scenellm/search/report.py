"""``scenellm study report NAME``: best trial, a table of trials, parameter importances
and PNG plots, written under ``<home>/studies/<name>/report/`` and logged to the study's
MLflow parent run. ``promote=True`` also registers the best trial's model
(:mod:`scenellm.search.promote`).

Importances are fANOVA's (seeded): on a dozen trials Optuna's default, PED-ANOVA, looks
only at the top one or two trials and can rank a parameter that does not matter first.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from scenellm.config.names import check_name, path_under
from scenellm.errors import UserError
from scenellm.project import Project
from scenellm.search.objective import RUN_ID
from scenellm.search.optimize import trial_counts
from scenellm.search.space import Heartbeat
from scenellm.search.storage import display, open_storage, resolve_target
from scenellm.search.study import BASE, METRIC, PARENT


def load_study(project: Project, name: str, storage: str | None = None) -> optuna.Study:
    check_name(name, "study")
    target = resolve_target(storage, project)
    backend = open_storage(target, Heartbeat())
    try:
        return optuna.load_study(study_name=name, storage=backend)
    except KeyError:
        known = ", ".join(optuna.get_all_study_names(backend)) or "none"
        raise UserError(
            f"study '{name}' not found in {display(target)} (studies: {known}); "
            "pass --storage where it was run."
        ) from None


def trial_row(trial: FrozenTrial) -> dict[str, Any]:
    seconds = (
        (trial.datetime_complete - trial.datetime_start).total_seconds()
        if trial.datetime_complete and trial.datetime_start
        else None
    )
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "epochs": len(trial.intermediate_values),
        "pruned_at_epoch": trial.user_attrs.get("pruned_at_epoch"),
        "retry_of": trial.system_attrs.get("failed_trial"),
        "seconds": round(seconds, 1) if seconds is not None else None,
        **trial.params,
        "mlflow_run_id": trial.user_attrs.get(RUN_ID),
    }


def importance_evaluator():
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def param_importances(study: optuna.Study) -> tuple[dict[str, float] | None, str | None]:
    """``(importances, None)`` or ``(None, why not)``."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, f"needs at least 2 complete trials, the study has {len(complete)}"
    try:
        found = optuna.importance.get_param_importances(study, evaluator=importance_evaluator())
    except (ValueError, RuntimeError) as exc:
        return None, str(exc)
    return {k: float(v) for k, v in found.items()}, None


def build_report(study: optuna.Study, storage: str) -> dict[str, Any]:
    counts = trial_counts(study)
    best = None
    if counts["complete"]:
        t = study.best_trial
        best = {
            "number": t.number,
            "value": t.value,
            "params": t.params,
            "mlflow_run_id": t.user_attrs.get(RUN_ID),
            "finetune_output": t.user_attrs.get("stage.finetune", {}).get("path"),
        }
    importances, note = param_importances(study)
    return {
        "study": study.study_name,
        "storage": display(storage),
        "direction": study.direction.name.lower(),
        "metric": study.user_attrs.get(METRIC),
        "counts": counts,
        "best": best,
        "importances": importances,
        "importances_note": note,
        "parent_run_id": study.user_attrs.get(PARENT),
        "trials": [trial_row(t) for t in study.get_trials(deepcopy=False)],
    }


def render_markdown(report: dict[str, Any]) -> str:
    c, best = report["counts"], report["best"]
    lines = [
        f"# study {report['study']}",
        "",
        f"{report['direction']} `{report['metric']}` (validation); storage "
        f"`{report['storage']}`; MLflow parent run `{report['parent_run_id']}`",
        "",
        f"trials: {c['finished']} finished ({c['complete']} complete, {c['pruned']} "
        f"pruned), {c['fail']} failed, {c['running']} running, {c['waiting']} waiting",
        "",
    ]
    if best:
        lines += [
            f"**best trial {best['number']}**: {best['value']:.4f}",
            "",
            *[f"- `{k}` = {v!r}" for k, v in best["params"].items()],
            "",
        ]
    if report["importances"]:
        lines += [
            "| parameter | importance |",
            "|---|---|",
            *[f"| `{k}` | {v:.3f} |" for k, v in report["importances"].items()],
            "",
        ]
    else:
        lines += [f"importances: {report['importances_note']}", ""]
    rows = report["trials"]
    if rows:
        keys = [k for k in rows[0] if k != "mlflow_run_id"]
        for row in rows[1:]:
            keys += [k for k in row if k not in keys and k != "mlflow_run_id"]
        lines += [
            "| " + " | ".join(keys) + " |",
            "|" + "---|" * len(keys),
            *["| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in rows],
        ]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_report(report: dict[str, Any], study: optuna.Study, out_dir: Path) -> list[Path]:
    """``summary.json``, ``trials.csv``, ``report.md`` and the plots; returns their paths."""
    from scenellm.search.plots import save_plots

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(report, indent=2, default=str))
    rows = report["trials"]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out_dir / "trials.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "report.md").write_text(render_markdown(report))
    plots = save_plots(study, out_dir, report["importances"], importance_evaluator())
    return [out_dir / n for n in ("summary.json", "trials.csv", "report.md")] + plots


def study_report(
    project: Project,
    name: str,
    storage: str | None = None,
    out_dir: Path | None = None,
    promote: bool = False,
) -> dict[str, Any]:
    """Write the report, log it to the parent run, optionally promote the best model."""
    from scenellm.tracking.runs import Tracker

    study = load_study(project, name, storage)
    report = build_report(study, resolve_target(storage, project))
    out = out_dir or path_under(project.home, "studies", check_name(name, "study"), "report")
    files = write_report(report, study, out)
    report["files"] = [str(p) for p in files]
    parent = study.user_attrs.get(PARENT)
    if parent:
        experiment = study.user_attrs[BASE]["orchestration"]["experiment"]
        tracker = Tracker(project.mlflow_tracking_uri, experiment)
        tracker.client.log_artifacts(parent, str(out), artifact_path="report")
        if promote:
            from scenellm.search.promote import promote_best

            report["promotion"] = promote_best(project, study, tracker)
            (out / "summary.json").write_text(json.dumps(report, indent=2, default=str))
    elif promote:
        raise UserError(f"study '{name}' has no MLflow parent run to register a model under.")
    return report
