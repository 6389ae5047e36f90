"""What a ``train`` run reports: a summary dict and its Markdown form (Prefect artifact)."""

from __future__ import annotations

import json

from scenellm.evaluation import PRIMARY_METRIC

REFERENCES = ("baseline", "trees", "trees_temporal")
HEADLINE = tuple(f"{mode}_{c}_{k}" for mode in ("predcls", "sgcls", "sgdet")
                 for c in ("with", "no") for k in ("R@20", "R@50", "mR@20", "mR@50"))


def headline_metrics(evaluate: dict, finetune: dict) -> dict[str, float]:
    """What a pipeline's parent run carries so that the runs table compares something: the
    model's and each reference's test recall and mean recall (with and without graph
    constraint), and the validation metric the registry compares."""
    from scenellm.evaluation import SELECTION_METRIC

    out = {f"{prefix}{key}": evaluate[f"{prefix}{key}"]
           for prefix in ("", *(f"{ref}_" for ref in REFERENCES)) for key in HEADLINE
           if f"{prefix}{key}" in evaluate}
    best = finetune.get("best_" + SELECTION_METRIC)
    if best is not None:
        out["best_" + SELECTION_METRIC] = best
    return out


def train_summary(run, registration: dict | None) -> dict:
    """Data version, each stage (reused or computed, seconds, fingerprint), the primary
    metric beside its references, the registry outcome and the evaluation table."""
    evaluate = run.results.get("evaluate")
    table = (evaluate.path / "table.txt").read_text() if evaluate else ""
    return {
        "data_root": str(run.data_root),
        "data_version": run.data_version,
        "mlflow_run_id": run.parent_id,
        "stage_runs": dict(run.stage_runs),
        "mlflow_tracking_uri": run.project.mlflow_tracking_uri,
        "stages": {k: {"reused": v.reused, "seconds": round(v.seconds, 2),
                       "fingerprint": v.fingerprint[:16], "output": str(v.path)}
                   for k, v in run.results.items()},
        "primary_metric": {PRIMARY_METRIC: evaluate.metrics.get(PRIMARY_METRIC)
                           if evaluate else None,
                           **{ref: evaluate.metrics.get(f"{ref}_{PRIMARY_METRIC}")
                              if evaluate else None for ref in REFERENCES}},
        "registration": registration,
        "table": table,
    }


def summary_markdown(summary: dict) -> str:
    rows = "\n".join(f"| {k} | {'reused' if v['reused'] else 'computed'} | {v['seconds']} | "
                     f"`{v['fingerprint']}` |" for k, v in summary["stages"].items())
    reg = summary["registration"] or {}
    return (f"# train run\n\ndata version `{summary['data_version']}`, MLflow run "
            f"`{summary['mlflow_run_id']}`\n\n| stage | status | seconds | fingerprint |\n"
            f"|---|---|---|---|\n{rows}\n\n```\n{summary['table']}```\n\n"
            f"registered: {json.dumps(reg)}\n")
