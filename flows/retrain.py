"""The ``retrain`` flow (scheduled): retrain when the data version differs from the
champion's, or when forced; then register, compare and promote, and report.

A champion trained on an older data version was scored on other data, so its metric is
not comparable: on a data change the retrained model is promoted (``force``). On the same
data (forced retraining) the usual rule applies: champion only if strictly better.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from scenellm.config.load import load_params
from scenellm.data.default import ensure_data
from scenellm.project import Project
from scenellm.tracking.registry import champion_info
from scenellm.tracking.runs import Tracker
from train import train  # flows/ is on sys.path for Prefect entrypoints and the CLI


@flow(name="retrain", log_prints=True)
def retrain(force: bool = False, overrides: list[str] | None = None) -> dict:
    logger = get_run_logger()
    project = Project.discover()
    params = load_params(project.params_dir, overrides)
    status = ensure_data(project, params.data)
    tracker = Tracker(project.mlflow_tracking_uri, params.orchestration.experiment)
    champion = champion_info(tracker.client)
    data_changed = champion is None or champion.get("data_md5") != status.md5
    if not (force or data_changed):
        report = {"retrained": False, "data_version": status.md5, "champion": champion,
                  "reason": "data version unchanged since the champion was trained"}
        logger.info(report["reason"])
    else:
        summary = train(overrides=overrides or [], promote=True, force_promote=data_changed)
        report = {"retrained": True, "data_version": status.md5, "previous": champion,
                  "registration": summary["registration"], "mlflow_run_id":
                  summary["mlflow_run_id"],
                  "reason": "data changed" if data_changed else "forced"}
    create_markdown_artifact(f"# retrain\n\n```\n{report}\n```\n", key="retrain-report")
    return report
