"""``scenellm tune``, ``scenellm study report`` and ``scenellm study list``: Optuna studies
over the pipeline.

The commands are plain functions; :mod:`scenellm.cli.main` registers them (wrapped in its
``user_errors``). Heavy libraries are imported inside them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import typer

STORAGE_HELP = (
    "Optuna storage: a journal file or a database URL such as "
    "postgresql://user@host:5432/db (default: $SCENELLM_OPTUNA_STORAGE, else "
    "<project>/.scenellm/optuna.journal)."
)


def tune(
    study: str = typer.Option(
        ...,
        "--study",
        help="Study name; the same name (and storage) joins the same study, from any machine.",
    ),
    trials: int = typer.Option(
        ...,
        "--trials",
        min=1,
        help="Finished (complete or pruned) trials the study ends with; a re-run tops it up.",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Worker processes on this machine (this one and K-1 more joining the study).",
    ),
    storage: str = typer.Option(None, "--storage", help=STORAGE_HELP),
    search: Path = typer.Option(
        None, "--search", help="Search space (default: <project>/params/search.yaml)."
    ),
    overrides: list[str] = typer.Option(
        None,
        "--set",
        help="Override a base param for every trial, e.g. --set finetune.phase_c_epochs=2.",
    ),
    params_dir: Path = typer.Option(
        None, "--params", help="Params folder (default: <project>/params)."
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Write the study report when the study is done."
    ),
    worker: bool = typer.Option(
        False,
        "--worker",
        help="Run as a plain worker: no Prefect "
        "flow, no extra processes, no report (what --workers starts).",
    ),
    worker_index: int = typer.Option(
        0,
        "--worker-index",
        min=0,
        help="Distinct per worker when a sampler seed is set (seeds differ per worker).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Search hyperparameters with an Optuna study (params/search.yaml).

    TPE by default, pruning on the fine-tuning stage's per-epoch validation R@20, an MLflow
    parent run per study and a child run per trial. A killed study continues where it
    stopped when re-run; trials of a dead worker are failed and retried (heartbeat).
    """
    from scenellm.project import Project

    project = Project.discover()
    start = time.perf_counter()
    if worker:
        import signal

        # Started from a background shell, SIGINT arrives ignored; the pool stops workers
        # with it, so that their running trials end as failed (not stale) runs.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from scenellm.search.optimize import run_worker
        from scenellm.search.study import TuneRequest

        summary = run_worker(
            TuneRequest(
                study, project, storage, search, params_dir, tuple(overrides or ()), worker_index
            ),
            trials,
        )
    else:
        summary = _run_flow(
            project, study, trials, workers, storage, search, params_dir, overrides, report
        )
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)


def _run_flow(
    project, study, trials, workers, storage, search, params_dir, overrides, report
) -> dict:
    from scenellm.cli.run import load_flow, prefect_environment
    from scenellm.config.load import apply_overrides, read_params_dir, validate
    from scenellm.config.names import check_name
    from scenellm.data.default import ensure_data
    from scenellm.search.space import load_search
    from scenellm.stages.preflight import preflight

    # Checked here so that a user error prints one line, before Prefect starts.
    check_name(study, "study")
    raw = apply_overrides(read_params_dir(params_dir or project.params_dir), overrides or [])
    search_path = search or project.params_dir / "search.yaml"
    load_search(search_path).check(raw, source=str(search_path))
    base = validate(raw)
    ensure_data(project, base.data)
    preflight(base, "finetune")
    prefect_environment(project)
    flow = load_flow(project, "tune", "tune")
    return flow(
        study=study,
        trials=trials,
        workers=workers,
        storage=storage,
        search_file=str(search) if search else None,
        params_dir=str(params_dir) if params_dir else None,
        overrides=list(overrides or []),
        report=report,
    )


def _print_summary(summary: dict) -> None:
    from rich.console import Console

    console = Console()
    counts = summary["counts"]
    console.rule(f"study {summary['study']}")
    console.print(f"storage   {summary['storage']}")
    console.print(
        f"trials    {counts['finished']} finished: {counts['complete']} complete, "
        f"{counts['pruned']} pruned; {counts['fail']} failed; this process ran "
        f"{len(summary['ran'])} in {summary['wall_seconds']} s"
    )
    for w in summary.get("workers", []):
        console.print(f"worker {w['index']}  exit {w['returncode']}  log {w['log']}")
    if "report" in summary:
        print_report(summary["report"], console)
    console.print(f"MLflow    parent run {summary['parent_run_id']}")


def print_report(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    best = report["best"]
    if best:
        console.print(
            f"best      trial {best['number']}: {report['metric']} = "
            f"[bold]{best['value']:.4f}[/bold]  {best['params']}"
        )
    if report["importances"]:
        console.print(
            "importance " + ", ".join(f"{k} {v:.2f}" for k, v in report["importances"].items())
        )
    table = Table(title="trials (params by their key after the section)")
    params = list(dict.fromkeys(k for row in report["trials"] for k in row if "." in k))
    for header in ("#", "state", "value", "epochs", *(k.split(".", 1)[1] for k in params)):
        table.add_column(header, overflow="fold")
    for row in report["trials"]:
        value = f"{row['value']:.4f}" if row["value"] is not None else ""
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in map(row.get, params)]
        table.add_row(str(row["number"]), row["state"].lower(), value, str(row["epochs"]), *cells)
    console.print(table)
    files = report.get("files") or []
    if files:
        console.print(f"report    {Path(files[0]).parent}")
    promotion = report.get("promotion")
    if promotion:
        console.print(
            f"registry  scenellm version {promotion['version']} → "
            f"[bold]{promotion['alias']}[/bold] ({promotion['reason']})"
        )


def study_commands(user_errors: Callable) -> typer.Typer:
    """The ``scenellm study`` group; ``user_errors`` is the CLI's one-line error wrapper."""
    app = typer.Typer(help="Inspect Optuna studies.", no_args_is_help=True)

    @app.command("report")
    @user_errors
    def report(
        name: str = typer.Argument(..., help="Study name."),
        storage: str = typer.Option(None, "--storage", help=STORAGE_HELP),
        out: Path = typer.Option(
            None, "--out", help="Report folder (default: <project>/.scenellm/studies/NAME/report)."
        ),
        promote: bool = typer.Option(
            False,
            "--promote",
            help="Evaluate the best trial on the "
            "test split and register it (champion/challenger rule).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Best trial, table of trials, parameter importances and PNG plots, logged to the
        study's MLflow parent run."""
        from scenellm.project import Project
        from scenellm.search.report import study_report

        result = study_report(Project.discover(), name, storage, out, promote)
        if as_json:
            typer.echo(json.dumps(result, indent=2, default=str))
        else:
            print_report(result)

    @app.command("list")
    @user_errors
    def list_(
        storage: str = typer.Option(None, "--storage", help=STORAGE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """Studies in the storage: trials per state, best value and trial, start time."""
        from scenellm.project import Project
        from scenellm.search.listing import list_studies

        found = list_studies(Project.discover(), storage)
        if as_json:
            typer.echo(json.dumps(found, indent=2, default=str))
        else:
            print_studies(found)

    return app


def print_studies(found: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"storage   {found['storage']}", soft_wrap=True)
    if not found["studies"]:
        console.print("no study yet; `scenellm tune --study NAME --trials N` starts one.")
        return
    table = Table()
    for header in ("study", "complete", "pruned", "failed", "best", "started"):
        table.add_column(header, overflow="fold")
    for s in found["studies"]:
        best = "" if s["best_value"] is None else f"{s['best_value']:.4f} (#{s['best_trial']})"
        table.add_row(s["name"], str(s["trials"]["complete"]), str(s["trials"]["pruned"]),
                      str(s["trials"]["fail"]), best, (s["started"] or "").replace("T", " "))
    console.print(table)
