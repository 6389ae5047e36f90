"""What a ``train`` run reports: registration of its model and a readable summary."""

from __future__ import annotations

import json

from scenellm.stages.evaluate import PRIMARY

FINGERPRINT_TAG = "finetune_fingerprint"


def already_registered(client, fingerprint: str) -> dict | None:
    """The registered version built from this fine-tuning output, if any."""
    from scenellm.tracking.registry import MODEL_NAME

    versions = client.search_model_versions(
        f"name='{MODEL_NAME}' and tags.{FINGERPRINT_TAG}='{fingerprint}'")
    if not versions:
        return None
    first = min(versions, key=lambda v: int(v.version))
    version = client.get_model_version(MODEL_NAME, first.version)  # search omits aliases
    return {"version": str(version.version), "alias": ",".join(version.aliases) or "none",
            "previous_champion": None,
            "reason": "this fine-tuning output is already registered; nothing to promote"}


def register_model(run, force: bool = False) -> dict:
    """Log the fine-tuned model, register it and apply the champion/challenger rule.

    A re-run that reused the fine-tuning output registers nothing new: the version built
    from that output (found by its fingerprint tag) is reported instead.
    """
    from scenellm.tracking.registry import MODEL_NAME, log_model, register_and_promote

    evaluate = run.results["evaluate"]
    metric = evaluate.metrics[PRIMARY]
    client = run.tracker.client
    fingerprint = run.results["finetune"].fingerprint
    outcome = None if force else already_registered(client, fingerprint)
    if outcome is None:
        uri = log_model(client, run.parent_id, run.results["finetune"].path / "model")
        outcome = register_and_promote(client, run.parent_id, uri, metric, run.data_version,
                                       force=force)
        client.set_model_version_tag(MODEL_NAME, outcome["version"], FINGERPRINT_TAG,
                                     fingerprint)
    run.tracker.set_tags(run.parent_id, {"scenellm.registered_version": outcome["version"],
                                         "scenellm.registered_alias": outcome["alias"]})
    return {**outcome, "metric": metric}


def train_summary(run, registration: dict | None) -> dict:
    evaluate = run.results.get("evaluate")
    table = (evaluate.path / "table.txt").read_text() if evaluate else ""
    return {
        "data_root": str(run.data_root),
        "data_version": run.data_version,
        "mlflow_run_id": run.parent_id,
        "mlflow_tracking_uri": run.project.mlflow_tracking_uri,
        "stages": {k: {"reused": v.reused, "seconds": round(v.seconds, 2),
                       "fingerprint": v.fingerprint[:16], "output": str(v.path)}
                   for k, v in run.results.items()},
        "primary_metric": {PRIMARY: evaluate.metrics.get(PRIMARY) if evaluate else None,
                           "baseline": evaluate.metrics.get("baseline_" + PRIMARY)
                           if evaluate else None},
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
