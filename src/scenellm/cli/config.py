"""``scenellm config show``: the params a run would use, each with its origin."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import typer


def _lines(rows, width: int) -> list[str]:
    """``key  value  origin`` aligned; a row wider than ``width`` puts its origin on the
    next line."""
    key_w = max(len(k) for k, _, _ in rows)
    out = []
    for key, value, origin in rows:
        text = f"{key:<{key_w}}  {json.dumps(value)}"
        out += [f"{text}  {origin}"] if len(text) + 2 + len(origin) <= width else \
            [text, f"{'':<{key_w}}  ↳ {origin}"]
    return out


def config_commands(user_errors: Callable) -> typer.Typer:
    app = typer.Typer(help="Inspect the params a run would use.", no_args_is_help=True)

    @app.command("show")
    @user_errors
    def show(
        overrides: list[str] = typer.Option(None, "--set", help="Override a param, e.g. "
                                            "--set vqvae.codebook_size=64 (repeatable)."),
        params_dir: Path = typer.Option(None, "--params", help="Params folder (default: "
                                        "<project>/params)."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """Print every resolved param with where its value came from: FILE:LINE, --set KEY
        or default (the schema's value when no file sets it)."""
        from scenellm.config.load import apply_overrides, read_params_dir, validate
        from scenellm.config.show import origins
        from scenellm.project import Project

        project = Project.discover()
        folder = params_dir or project.params_dir
        raw = apply_overrides(read_params_dir(folder), overrides or [])
        rows = origins(raw, validate(raw, source=str(folder)), project.root)
        if as_json:
            typer.echo(json.dumps({k: {"value": v, "origin": o} for k, v, o in rows},
                                  indent=2))
            return
        width = shutil.get_terminal_size((80, 24)).columns
        typer.echo("\n".join(_lines(rows, width)))

    return app
