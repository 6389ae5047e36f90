"""``scenellm audit TARGET``: verify a run's recorded lineage, optionally reproduce it."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def audit(
    target: str = typer.Argument(
        ...,
        help="An MLflow run id, a registered model version "
        "(scenellm/3) or alias (scenellm@champion), or a "
        "study trial (study:NAME/trial:N).",
    ),
    reproduce: bool = typer.Option(
        False,
        "--reproduce",
        help="Re-run the evaluation from the recorded stage outputs and compare every metric.",
    ),
    full: bool = typer.Option(
        False,
        "--full",
        help="Re-run the whole pipeline from the "
        "recorded data version and params instead (implies "
        "--reproduce).",
    ),
    tolerance: float = typer.Option(
        None,
        help="Largest metric difference accepted when "
        "reproducing (default: 0 on CPU, 0.01 on CUDA).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the audit as JSON."),
    html: Path = typer.Option(None, "--html", help="Also write the HTML report to this file."),
    log: bool = typer.Option(
        True, "--log/--no-log", help="Log the HTML and JSON reports to the audited MLflow run."
    ),
) -> None:
    """Verify every link of a run's lineage: data version, commit, params, stage outputs.

    Exits 0 only when every checkable link passes; links that cannot be checked (no git
    repository, deleted outputs) are reported with the reason.
    """
    import os

    from scenellm.audit.report import audit as run_audit
    from scenellm.audit.report_html import render_html

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mode = "full" if full else "eval" if reproduce else None
    report = run_audit(target, reproduce=mode, tolerance=tolerance, log=log)
    if html:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        from scenellm.audit.report_terminal import print_report

        print_report(report)
    raise typer.Exit(report.exit_code)
