"""``scenellm runs compare``: MLflow runs side by side (:mod:`scenellm.tracking.compare`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_comparison(comparison, csv: Path, all_params: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    runs = comparison.runs
    params = comparison.params if all_params else comparison.differing_params()
    for title, rows in ((f"params ({'all' if all_params else 'differing'})", params),
                        ("metrics", comparison.metrics)):
        table = Table(title=title, title_justify="left")
        table.add_column("key", overflow="fold")
        for r in runs:
            table.add_column(f"{r.info.run_name}\n{r.info.run_id[:8]}", overflow="fold")
        for key, values in rows.items():
            table.add_row(key, *map(_cell, values))
        if not rows:
            table.add_row("(none differ)" if title.startswith("params") else "(none)",
                          *[""] * len(runs))
        console.print(table)
    typer.echo(f"table (mlflow.search_runs columns): {csv}")
    typer.echo(f"MLflow UI compare page: {comparison.ui_url()}")


def runs_commands(user_errors: Callable) -> typer.Typer:
    """The ``scenellm runs`` group; ``user_errors`` is the CLI's one-line error wrapper."""
    app = typer.Typer(help="Inspect MLflow runs.", no_args_is_help=True)

    @app.command("compare")
    @user_errors
    def compare(
        refs: list[str] = typer.Argument(None, metavar="[RUN]...",
                                         help="Run ids, id prefixes or run names."),
        last: int = typer.Option(None, "--last", min=1,
                                 help="Compare the last N pipeline (train-*) runs "
                                      "(default 2 when no RUN is given)."),
        all_params: bool = typer.Option(False, "--all", help="Show every param, not only "
                                                             "those that differ."),
        out: Path = typer.Option(None, "--out", help="CSV to write (default: "
                                 "<home>/reports/compare/FIRST-LAST.csv)."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """Print params and metrics of runs side by side and write them as a CSV in
        MLflow's runs-table columns; names the MLflow UI page that compares the same runs."""
        from mlflow import MlflowClient

        from scenellm.config.load import load_params
        from scenellm.errors import UserError
        from scenellm.project import Project
        from scenellm.tracking.compare import compare, find_run, last_runs, summary, write_table

        project = Project.discover()
        client = MlflowClient(project.mlflow_tracking_uri)
        name = load_params(project.params_dir).orchestration.experiment
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise UserError(f"no MLflow experiment '{name}' in {project.mlflow_tracking_uri}"
                            " yet; run `scenellm run` first.")
        eid = experiment.experiment_id
        runs = [find_run(client, eid, r) for r in refs or []]
        if last or not runs:
            runs += last_runs(client, eid, last or 2)
        comparison = compare(runs)
        ids = [r.info.run_id for r in runs]
        csv = write_table(comparison, out or project.home / "reports" / "compare" /
                          f"{ids[0][:8]}-{ids[-1][:8]}.csv")
        if as_json:
            typer.echo(json.dumps({**summary(comparison), "csv": str(csv),
                                   "ui": comparison.ui_url()}, indent=2))
        else:
            print_comparison(comparison, csv, all_params)

    return app
