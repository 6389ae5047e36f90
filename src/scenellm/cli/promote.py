"""``scenellm promote VERSION [--force]``: the registry rule's override."""

from __future__ import annotations

import json

import typer


def promote(
    version: int = typer.Argument(..., min=1, help="Registered version of the model."),
    force: bool = typer.Option(False, "--force", help="Promote even when the rule says no "
                               "(e.g. scored on other data than the champion)."),
    name: str = typer.Option("scenellm", "--name", help="Registered model name."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Make a registered version the champion.

    Without --force the registry's rule decides (a higher validation metric on the same
    data version); with it the version becomes champion regardless.
    """
    from mlflow import MlflowClient

    from scenellm.project import Project
    from scenellm.tracking.promote import promote_version

    client = MlflowClient(Project.discover().mlflow_tracking_uri)
    outcome = promote_version(client, version, force, name)
    if as_json:
        typer.echo(json.dumps(outcome, indent=2))
        return
    typer.echo(f"registry  {name} version {outcome['version']} → champion "
               f"({outcome['reason']})")
