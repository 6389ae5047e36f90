"""``scenellm config show``: the params a run would use, each with its origin."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import typer


def _lines(rows, width: int) -> list[str]:
    """``key  value  origin`` aligned; a value wider than its column folds onto the next
    lines (never cut), and an origin that no longer fits goes on a line of its own."""
    key_w = max(len(k) for k, _, _ in rows)
    room = max(width - key_w - 2, 20)
    pad = " " * (key_w + 2)
    out = []
    for key, value, origin in rows:
        parts = textwrap.wrap(json.dumps(value), room, break_on_hyphens=False) or [""]
        lines = [f"{key:<{key_w}}  {parts[0]}", *(pad + p for p in parts[1:])]
        if len(lines[-1]) + 2 + len(origin) <= width:
            lines[-1] += f"  {origin}"
        else:
            lines.append(pad + origin)
        out += lines
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
