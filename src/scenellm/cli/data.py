"""``scenellm data``: synthesize, inspect and validate Action Genome directories."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Create, inspect and validate Action Genome-layout datasets.",
                  no_args_is_help=True)


def _fail(message: str) -> None:
    """A user error as one line on stderr, exit 2."""
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg="red")
    raise typer.Exit(2)


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise typer.BadParameter("use WxH, e.g. 160x120") from None
    if w < 32 or h < 32:
        raise typer.BadParameter("frames must be at least 32x32")
    return w, h


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (must not exist or be empty)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed → byte-identical files."),
    videos: int = typer.Option(100, "--videos", min=1, help="Number of videos."),
    frames: int = typer.Option(16, "--frames", min=1, help="Frames per video."),
    size: str = typer.Option("160x120", "--size", help="Frame size WxH."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
) -> None:
    """Write a deterministic synthetic dataset in the exact Action Genome layout."""
    import shutil

    from rich.progress import Progress

    from scenellm.data.synth import generate

    if out.exists() and any(out.iterdir()):
        if not force:
            _fail(f"{out}: folder exists and is not empty; pass --force to replace it.")
        shutil.rmtree(out)
    with Progress(transient=True) as progress:
        task = progress.add_task("rendering videos", total=videos)
        summary = generate(out, seed=seed, videos=videos, frames=frames, size=_size(size),
                           progress=lambda done, total: progress.update(task, completed=done))
    typer.echo(f"wrote {out}: " + ", ".join(f"{k}={v}" for k, v in summary.items()
                                            if isinstance(v, int | float | str)))


@app.command()
def inspect(
    root: Path = typer.Argument(..., help="Action Genome root (annotations/, frames/)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
    min_frames: int = typer.Option(3, help="Minimum kept frames per video (STTran: 3)."),
) -> None:
    """Per split after STTran's filtering: videos, frames, objects per frame, label
    distributions and, for generated data, the world's oracle ceilings (PREDCLS R@K with
    constraint of the best predictor that sees one frame's world state, and of one that also
    knows the past)."""
    from scenellm.data.ag import load_action_genome
    from scenellm.data.ceilings import ceilings, read_states
    from scenellm.data.stats import split_stats
    from scenellm.errors import UserError

    try:
        data = load_action_genome(root, min_frames=min_frames)
        stats = split_stats(data)
        states = read_states(root)
        if states is not None:
            for split, c in ceilings(data, states).items():
                stats[split]["ceilings"] = c
    except UserError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{root} (after STTran filtering)", caption="no-contact: share of "
                  "not_contacting among contacting labels; R@20 now / past: oracle ceilings")
    columns = ("split", "videos", "frames", "obj/frame", "triplets", "no-contact",
               "R@20 now", "R@20 past")
    for column in columns:
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, c in stats.items():
        ceiling = c.get("ceilings")
        table.add_row(split, str(c["videos"]), str(c["frames"]), f"{c['objects_per_frame']:.2f}",
                      str(c["relations"]), f"{c['not_contacting_share']:.0%}",
                      f"{ceiling['per_frame']['R@20']:.1f}" if ceiling else "-",
                      f"{ceiling['history']['R@20']:.1f}" if ceiling else "-")
    Console().print(table)


@app.command()
def validate(
    root: Path = typer.Argument(..., help="Action Genome root to validate."),
    report: Path = typer.Option(None, help="Folder for the report and GX Data Docs "
                                           "(default: <root>/../<name>-validation)."),
) -> None:
    """Check the files and run the Great Expectations suite on the prepared tables.

    Exit 2 with one line on stderr when the data is malformed (the full report, when the
    suite ran, is printed and written to the report folder).
    """
    from scenellm.data.ag import load_action_genome
    from scenellm.data.tables import build_tables
    from scenellm.data.validation import validate_tables
    from scenellm.errors import UserError

    try:
        tables = build_tables(load_action_genome(root))
    except UserError as exc:
        _fail(str(exc))
    report_dir = report or root.resolve().parent / f"{root.resolve().name}-validation"
    result = validate_tables(tables, report_dir=report_dir)
    typer.echo(result.to_text())
    typer.echo(f"report: {report_dir}")
    if not result.success:
        _fail(f"{root}: {result.headline()}; report: {report_dir / 'validation.txt'}")


@app.command()
def ensure() -> None:
    """Regenerate the default data/ from its seed if missing; check its md5 against data.dvc."""
    from rich.progress import Progress

    from scenellm.config.load import load_params
    from scenellm.data.default import ensure_data
    from scenellm.errors import UserError
    from scenellm.project import Project

    project = Project.discover()
    try:
        params = load_params(project.params_dir)
        with Progress(transient=True) as progress:
            task = progress.add_task("synthesizing default data", total=None)
            status = ensure_data(project, params.data, progress=lambda d, t: progress.update(
                task, completed=d, total=t))
    except UserError as exc:
        _fail(str(exc))
    state = "generated" if status.generated else "present"
    check = "matches data.dvc" if status.recorded else "not tracked by DVC"
    typer.echo(f"{status.root}: {state}, md5 {status.md5} ({check})")


def _tracked_data():
    """The project, its DVC remote and the ``.dvc`` file of the configured data root."""
    from scenellm.config.load import load_params
    from scenellm.data.dvc_remote import DvcRemote, tracking_file
    from scenellm.project import Project

    project = Project.discover()
    root = project.data_root(load_params(project.params_dir).data.root)
    dvc_file = tracking_file(project, root)
    remote = DvcRemote.of(project)
    if dvc_file is None or remote is None:
        _fail(f"{root}: not tracked by a .dvc file in a DVC repository; nothing to push or "
              "pull (`dvc add` it first).")
    return root, dvc_file, remote


@app.command()
def push() -> None:
    """Push the data version data.dvc records to the DVC remote `store` (DVC's cache
    first); a no-op when the remote holds it. The remote: $SCENELLM_DVC_REMOTE, else DVC's
    `store` remote, else .scenellm/dvc-remote."""
    from scenellm.data.version import recorded_md5
    from scenellm.errors import ServiceError, UserError

    root, dvc_file, remote = _tracked_data()
    try:
        pushed = remote.push(dvc_file)
    except (UserError, ServiceError) as exc:
        _fail(str(exc))
    state = "pushed to" if pushed else "already on"
    typer.echo(f"{root}: md5 {recorded_md5(dvc_file)} {state} {remote}")


@app.command()
def pull() -> None:
    """Check out the data version data.dvc records from the DVC remote `store` (what a
    worker on a fresh clone does by itself when data/ is missing)."""
    from scenellm.errors import ServiceError, UserError

    root, dvc_file, remote = _tracked_data()
    try:
        md5 = remote.pull(dvc_file)
    except (UserError, ServiceError) as exc:
        _fail(str(exc))
    typer.echo(f"{root}: md5 {md5} pulled from {remote}")
