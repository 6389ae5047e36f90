"""``scenellm run``: the train flow on the embedded defaults, with a readable summary."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from scenellm.project import Project


def prefect_environment(project: Project) -> None:
    """Embedded Prefect: without a configured server, a Prefect API subprocess for this
    command with its database under the project folder, launched now so that it boots while
    the command imports (``scenellm.cli.embedded_api``). Call before importing prefect."""
    from scenellm.cli.embedded_api import start_embedded_api

    os.environ.setdefault("PREFECT_HOME", str(project.home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    start_embedded_api(Path(os.environ["PREFECT_HOME"]))


def load_flow(project: Project, module: str, name: str):
    """A flow from ``<project>/flows/<module>.py``, imported by module name (flows import
    each other that way, as Prefect entrypoints do, and deployments need a real module).

    While the embedded Prefect API (``prefect_environment``) boots, this imports what every
    flow needs anyway (the flow module, torch, MLflow) and opens the MLflow store (creating
    its tables on a first run); it returns once the API answers.
    """
    import sys

    import mlflow
    import torch  # noqa: F401  (every stage needs it)

    from scenellm.cli.embedded_api import wait_for_embedded_api

    folder = str(project.root / "flows")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    flow = getattr(importlib.import_module(module), name)
    mlflow.MlflowClient(project.mlflow_tracking_uri)  # MLflow caches the store per URI
    wait_for_embedded_api()
    return flow


def print_summary(summary: dict, project: Project) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.rule("scenellm run")
    console.print(f"data      {summary['data_root']}  version [bold]{summary['data_version']}"
                  "[/bold]")
    table = Table(title="stages")
    for column in ("stage", "status", "seconds", "fingerprint"):
        table.add_column(column)
    for name, s in summary["stages"].items():
        table.add_row(name, "[dim]reused[/dim]" if s["reused"] else "[green]computed[/green]",
                      f"{s['seconds']:.1f}", s["fingerprint"])
    console.print(table)
    console.print("test split, model beside the frequency baseline (recall in %):")
    console.print(summary["table"], highlight=False)
    reg = summary.get("registration")
    if reg:
        console.print(f"registry  scenellm version {reg['version']} → [bold]{reg['alias']}"
                      f"[/bold] ({reg['reason']})")
    console.print(f"MLflow    run {summary['mlflow_run_id']}")
    console.print(f"open UI   mlflow ui --backend-store-uri {summary['mlflow_tracking_uri']} "
                  "--host 127.0.0.1 --port 5000")
    console.print(f"stage dirs under {project.artifacts}")


def run_pipeline(overrides: list[str] | None, register: bool) -> dict:
    from scenellm.config.load import load_params
    from scenellm.data.default import ensure_data

    project = Project.discover()
    params = load_params(project.params_dir, overrides)
    prefect_environment(project)  # the API boots while the data is checked and flows import
    ensure_data(project, params.data)
    train = load_flow(project, "train", "train")
    summary = train(overrides=overrides or [], promote=register)
    print_summary(summary, project)
    return summary
