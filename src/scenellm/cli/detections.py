"""``scenellm detections``: convert and check the detections files SGDET reads."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    help="Convert and check detector output for SGDET (scene graphs on detected boxes).\n\n"
         "A detections file is an .npz of frame_keys, counts, boxes (x1, y1, x2, y2 pixels), "
         "labels (Action Genome class names) and scores in [0, 1]; docs/detections.md "
         "describes it in full.",
    no_args_is_help=True,
)
SPLITS = ("test", "train", "all")


def _fail(message: str) -> None:
    """A user error as one line on stderr, exit 2."""
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg="red")
    raise typer.Exit(2)


def _classes(counts: dict[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {n}" for name, n in ranked) or "none"


def _summary(dets) -> dict:
    per_frame = [len(f.labels) for f in dets.per_frame]
    return {
        "file": dets.source,
        "frames": len(per_frame),
        "detections": sum(per_frame),
        "per_frame": {"mean": sum(per_frame) / len(per_frame) if per_frame else 0.0,
                      "min": min(per_frame, default=0), "max": max(per_frame, default=0),
                      "empty_frames": per_frame.count(0)},
        "classes": dets.class_counts(),
    }


def _dataset_frames(root: Path, split: str) -> list[str]:
    """Frame keys of ``split`` after STTran's filtering (the frames SGDET evaluates)."""
    from scenellm.data.ag import SPLITS as AG_SPLITS
    from scenellm.data.ag import load_action_genome

    data = load_action_genome(root)
    splits = AG_SPLITS if split == "all" else (split,)
    return [f.key for s in splits for frames in data.split(s).values() for f in frames]


@app.command()
def convert(
    src: Path = typer.Argument(..., help="STTran-layout pickle: {video_id: {frame_names, "
                                         "boxes (N, 5) [im_idx, x1, y1, x2, y2], labels "
                                         "(STTran ids), scores}}."),
    out: Path = typer.Argument(..., help="Detections .npz to write."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Convert the per-video detector pickle of STTran / DSG-DETR into a detections .npz.

    The pickle is read through the restricted Action Genome unpickler (numpy arrays and
    plain containers only; save tensors with .numpy()). Every frame of frame_names becomes
    a frame of OUT, with no detections when no row points at it. Prints the frames,
    detections and detections per class written.
    """
    from scenellm.data.detections_sttran import convert_sttran
    from scenellm.errors import UserError

    if out.exists() and not force:
        _fail(f"{out}: file exists; pass --force to replace it.")
    try:
        dets = convert_sttran(src)
        dets.write(out)
    except UserError as exc:
        _fail(str(exc))
    summary = _summary(dets)
    typer.echo(f"wrote {out}: {summary['frames']} frames, {summary['detections']} detections")
    typer.echo(f"classes: {_classes(summary['classes'])}")


@app.command()
def check(
    file: Path = typer.Argument(..., help="Detections .npz to validate."),
    data: Path = typer.Option(None, "--data", help="Action Genome root: also report the "
                                                   "frames of --split that FILE lacks."),
    split: str = typer.Option("test", "--split", help="Split of --data whose frames FILE "
                                                      "should cover: test, train or all."),
    strict: bool = typer.Option(False, "--strict", help="Exit 2 when FILE lacks frames of "
                                                        "--data (they would score 0)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Validate a detections file and summarise it: frames, detections per frame, detections
    per class and, with --data, the frames of the dataset it lacks.

    Exit 2 with one line on stderr when the file is malformed (the line names the file and
    the first offending frame or row).
    """
    from scenellm.data.detections import Detections
    from scenellm.errors import UserError

    if split not in SPLITS:
        _fail(f"--split must be one of {', '.join(SPLITS)}, got {split!r}.")
    try:
        dets = Detections.read(file)
        summary = _summary(dets)
        if data is not None:
            frames = _dataset_frames(data, split)
            missing = dets.missing_frames(frames)
            summary["dataset"] = {"root": str(data), "split": split, "frames": len(frames),
                                  "missing": len(missing), "first_missing": missing[:5]}
            if strict:
                dets.check_against(frames, f"{data} ({split} split)")
    except UserError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    per = summary["per_frame"]
    typer.echo(f"{file}: {summary['frames']} frames, {summary['detections']} detections")
    typer.echo(f"per frame: mean {per['mean']:.2f}, min {per['min']}, max {per['max']}; "
               f"{per['empty_frames']} frame(s) with none")
    typer.echo(f"classes: {_classes(summary['classes'])}")
    if data is not None:
        ds = summary["dataset"]
        line = f"{data} ({split} split): {ds['frames']} frames, {ds['missing']} missing from the file"
        if ds["missing"]:
            line += f" (first: {', '.join(ds['first_missing'][:3])}; they score 0)"
        typer.echo(line)
