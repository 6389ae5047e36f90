"""``scenellm dvc``: keep ``dvc.yaml`` equal to the stage declarations."""

from __future__ import annotations

import typer

app = typer.Typer(help="DVC's view of the pipeline, generated from the stages.",
                  no_args_is_help=True)


@app.command("yaml")
def write_yaml(
    check: bool = typer.Option(False, "--check", help="Only compare: exit 1 when dvc.yaml "
                                                      "differs from the stages."),
) -> None:
    """Write dvc.yaml from the stage declarations (deps = each stage's computed code
    closure, upstream outputs and data; params = the sections it reads)."""
    from scenellm.io import atomic_write_text
    from scenellm.project import Project
    from scenellm.stages.dvc import dvc_yaml

    project = Project.discover()
    path = project.root / "dvc.yaml"
    text = dvc_yaml(project.root)
    current = path.read_text() if path.exists() else ""
    if check:
        if current != text:
            typer.echo(f"{path}: out of date with the stages; run `scenellm dvc yaml`.",
                       err=True)
            raise typer.Exit(1)
        typer.echo(f"{path}: matches the stages.")
        return
    if current != text:
        atomic_write_text(path, text)
    typer.echo(f"{path}: {'written' if current != text else 'already up to date'}.")
