"""``scenellm run``: the train flow on the embedded defaults, with a readable summary."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from scenellm.errors import ServiceError, UserError
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
    # shard task runs of `scenellm stage features` run outside a flow: no run to log to
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "creating tables" chatter
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    start_embedded_api(Path(os.environ["PREFECT_HOME"]))


def prefect_for_shards(target: str, params, project: Project, verify: bool,
                       force: tuple[str, ...]) -> None:
    """``scenellm stage``: the Prefect API the features stage's shard task runs report to
    (``orchestration.feature_workers`` > 1), started only when that stage will compute."""
    from scenellm.cli.embedded_api import wait_for_embedded_api
    from scenellm.stages.pipeline import resolve_data
    from scenellm.stages.plan import plan

    if params.orchestration.feature_workers == 1:
        return
    _, version = resolve_data(params, project)
    if any(p.name == "features" and p.action != "reuse"
           for p in plan(target, params, project, version, verify, force)):
        prefect_environment(project)
        quiet_user_errors()
        wait_for_embedded_api()


class QuietUserErrors:
    """A logging filter for Prefect's run loggers: drop their reports (tracebacks included)
    of a :class:`UserError`, which the command prints as its one line."""

    @staticmethod
    def _names() -> set[str]:
        found, todo = set(), [UserError]
        while todo:
            cls = todo.pop()
            found.add(cls.__name__)
            todo.extend(cls.__subclasses__())
        return found

    def filter(self, record) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            return False
        message = record.getMessage()
        return not any(f"{n}(" in message or f"{n}:" in message for n in self._names())


def quiet_user_errors() -> None:
    import logging

    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(QuietUserErrors())


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
    quiet_user_errors()
    mlflow.MlflowClient(project.mlflow_tracking_uri)  # MLflow caches the store per URI
    wait_for_embedded_api()
    return flow


def print_summary(summary: dict, project: Project) -> None:
    """The run's summary; identifiers, paths and commands are folded or left whole (one
    line to copy), never cut."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.rule("scenellm run")
    console.print(f"data      {summary['data_root']}  version [bold]{summary['data_version']}"
                  "[/bold]", overflow="fold")
    table = Table(title="stages")
    for column in ("stage", "status", "seconds", "fingerprint"):
        table.add_column(column, overflow="fold")
    for name, s in summary["stages"].items():
        table.add_row(name, "[dim]reused[/dim]" if s["reused"] else "[green]computed[/green]",
                      f"{s['seconds']:.1f}", s["fingerprint"])
    console.print(table)
    console.print("test split, SceneLLM beside its references: the frequency baseline and "
                  "box-only gradient-boosted trees per frame and with frames t-3..t+2 "
                  "(recall in %):")
    console.print(summary["table"], highlight=False, soft_wrap=True)
    reg = summary.get("registration")
    if reg:
        console.print(f"registry  scenellm version {reg['version']} → [bold]{reg['alias']}"
                      f"[/bold] ({reg['reason']})")
        if "test_metric" in reg:
            console.print(f"          chosen on validation R@20 {100 * reg['metric']:.2f}; "
                          f"test R@20 {100 * reg['test_metric']:.2f} is reported, never compared")
    console.print(f"MLflow    run {summary['mlflow_run_id']} "
                  f"({stage_runs_line(summary.get('stage_runs') or {})})", overflow="fold")
    console.print(f"open UI   mlflow ui --backend-store-uri {summary['mlflow_tracking_uri']} "
                  "--host 127.0.0.1 --port 5000", soft_wrap=True)
    console.print(f"stage dirs under {project.artifacts}", overflow="fold")


def stage_runs_line(stage_runs: dict) -> str:
    """How many stage runs this run created; the reuse of the others is on the parent."""
    new = [name for name, run_id in stage_runs.items() if run_id]
    reused = [name for name, run_id in stage_runs.items() if not run_id]
    if not reused:
        return f"{len(new)} stage runs"
    if not new:
        return "no new stage run: every stage reused, recorded on this run"
    return (f"{len(new)} stage run{'s' * (len(new) > 1)}; reuse of {', '.join(reused)} "
            "recorded on this run")


def run_pipeline(overrides: list[str] | None, register: bool, verify: bool = False,
                 force: tuple[str, ...] = ()) -> dict:
    import sys

    from scenellm.cli.embedded_api import embedded_api
    from scenellm.config.load import load_params
    from scenellm.data.default import ensure_data
    from scenellm.data.dvc_remote import push_tracked
    from scenellm.stages.preflight import preflight

    project = Project.discover()
    params = load_params(project.params_dir, overrides)
    prefect_environment(project)  # the API boots while the data is checked and flows import
    status = ensure_data(project, params.data)
    pushed = push_tracked(project, status.root)  # what a worker on another machine pulls
    if pushed:
        print(f"scenellm: data {status.md5} pushed to {pushed}", file=sys.stderr)
    preflight(params)
    train = load_flow(project, "train", "train")
    try:
        summary = train(overrides=overrides or [], promote=register, verify=verify,
                        force=list(force))
    except Exception as exc:
        fault = service_fault(exc, project)
        if fault is None:
            raise
        api = embedded_api()
        raise ServiceError(f"{fault}; {kept_outputs(project, params)}",
                           exit_now=api is not None and api.died()) from None
    print_summary(summary, project)
    return summary


def _chain(exc: BaseException):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def service_fault(exc: BaseException, project: Project) -> str | None:
    """Which service failed under the run, in words, or None for any other error."""
    import sqlite3

    from scenellm.cli.embedded_api import embedded_api

    api = embedded_api()
    if api is not None and api.died():
        return (f"the Prefect API this command started (127.0.0.1:{api.port}) died during "
                f"the run (see {api.log_path})")
    for cause in _chain(exc):
        name = f"{type(cause).__module__}.{type(cause).__name__}"
        if name.startswith("httpx.") and "Connect" in name:
            return f"the Prefect API at {project.prefect_api_url or 'its URL'} stopped answering"
        if isinstance(cause, sqlite3.OperationalError) or (
                name.startswith("mlflow.") and "connect" in str(cause).lower()):
            return (f"the MLflow store {project.mlflow_tracking_uri} failed: "
                    f"{str(cause).splitlines()[0][:160]}")
    return None


def kept_outputs(project: Project, params) -> str:
    """Which stage outputs are complete now (a re-run reuses them) — the run's work that
    tracking could not record."""
    from scenellm.stages.pipeline import resolve_data
    from scenellm.stages.plan import plan

    try:
        _, version = resolve_data(params, project)
        planned = plan("evaluate", params, project, version)
    except Exception:  # noqa: BLE001  (the report must not fail on top of the fault)
        return "re-run `scenellm run`: complete stage outputs are reused"
    done = [p.name for p in planned if p.action == "reuse"]
    todo = [p.name for p in planned if p.action != "reuse"]
    return (f"kept stage outputs: {', '.join(done) or 'none'}"
            + (f" (not finished: {', '.join(todo)})" if todo else "")
            + "; `scenellm run` reuses them and records the run and the model in MLflow")


def dry_run_pipeline(overrides: list[str] | None, verify: bool, force: tuple[str, ...]) -> None:
    """What ``scenellm run`` would do with these params, per stage; nothing runs."""
    from scenellm.cli.report import print_plan
    from scenellm.config.load import load_params
    from scenellm.errors import UserError
    from scenellm.stages.pipeline import resolve_data
    from scenellm.stages.plan import plan

    project = Project.discover()
    params = load_params(project.params_dir, overrides)
    root = project.data_root(params.data.root)
    if not root.exists():
        raise UserError(f"{root}: no data yet; `scenellm run` would generate the default "
                        "dataset first (`scenellm data ensure` does only that).")
    _, version = resolve_data(params, project)
    print_plan(plan("evaluate", params, project, version, verify, force, remote=True),
               as_json=False)
