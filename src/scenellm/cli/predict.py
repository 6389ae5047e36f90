"""``scenellm predict`` and ``scenellm show``: the registered model on videos of an Action
Genome folder, as a triplet file or as pictures."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

ModelOption = typer.Option("scenellm@champion", "--model", help="scenellm@ALIAS, "
                           "scenellm/VERSION, a run id, or a model folder (MLmodel or "
                           "bundle.json).")
DataOption = typer.Option(None, "--data", help="Action Genome folder (annotations/, frames/); "
                          "default: the project's data.root.")
ModeOption = typer.Option("predcls", "--mode", help="predcls: ground-truth boxes and labels; "
                          "sgcls: ground-truth boxes, predicted labels; sgdet: boxes, labels "
                          "and scores from the model's detection head.")


def _data_root(data: Path | None) -> Path:
    from scenellm.config.load import load_params
    from scenellm.project import Project

    if data is None:
        project = Project.discover()
        data = project.data_root(load_params(project.params_dir).data.root)
    root = data.expanduser().resolve()
    if not (root / "annotations").is_dir():  # before the model loads
        from scenellm.errors import PredictionRequestError

        raise PredictionRequestError(f"{root}: not an Action Genome folder (no annotations/); "
                                     "pass the folder that holds annotations/ and frames/.")
    return root


def _load(model: str):
    from scenellm.project import Project
    from scenellm.tracking.models import load_predictor

    return load_predictor(model, Project.discover().mlflow_tracking_uri)


def predict(
    model: str = ModelOption,
    data: Path = DataOption,
    videos: list[str] = typer.Option(None, "--video", help="Video id (repeatable; default: "
                                     "every video kept after STTran's filtering)."),
    mode: str = ModeOption,
    out: Path = typer.Option(None, "--out", help="FILE.jsonl or FILE.parquet (default: JSON "
                             "lines on stdout)."),
) -> None:
    """Predict scene graphs: one row per ranked triplet (with constraint), as the evaluate
    stage ranks them: video, frame, subject, object, object_index, boxes, predicate, kind,
    score."""
    from scenellm.errors import PredictionRequestError
    from scenellm.inference.batch import FORMATS, all_videos, encode, requests, write_table

    if out is not None and out.suffix.lower() not in FORMATS:  # before the model loads
        raise PredictionRequestError(f"{out}: write .jsonl or .parquet.")
    root = _data_root(data)
    predictor, ref = _load(model)
    chosen = videos or all_videos(predictor, root)
    start = time.perf_counter()
    table = predictor.predict(requests(root, chosen, mode))
    seconds = time.perf_counter() - start
    if out is None:
        sys.stdout.write(encode(table, ".jsonl").decode())
    else:
        write_table(table, out)
    frames = table.groupby("video")["frame_index"].nunique().sum() if len(table) else 0
    where = f" → {out}" if out else ""
    version = f" v{ref.version}" if ref.version is not None else ""
    typer.echo(f"{ref.text}{version}: {len(chosen)} videos, {frames} frames, {len(table)} "
               f"triplets in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} frames/s){where}",
               err=True)


def show(
    model: str = ModelOption,
    data: Path = DataOption,
    video: str = typer.Option(..., "--video", help="Video id."),
    mode: str = ModeOption,
    out: Path = typer.Option(None, "--out", help="FILE.gif (animated) or FILE.html "
                             "(default: VIDEO.gif here)."),
    top: int = typer.Option(5, "--top", min=1, help="Predicted relations listed per frame."),
) -> None:
    """Draw a video's frames with boxes, the top predicted relations and the ground truth
    beside, as an animated GIF or an HTML page."""
    from scenellm.errors import PredictionRequestError
    from scenellm.inference.batch import requests
    from scenellm.inference.show import render, save

    out = out or Path(f"{Path(video).stem}.gif")
    if out.suffix.lower() not in (".gif", ".html"):
        raise PredictionRequestError(f"{out}: write .gif or .html.")
    root = _data_root(data)
    predictor, _ = _load(model)
    table = predictor.predict(requests(root, [video], mode))
    source = predictor.source(str(root))
    vid = source.video_id(video)
    pictures, graphs = render(root, source.data, table, vid, top)
    save(pictures, graphs, vid, out)
    typer.echo(f"{vid}: {len(pictures)} frames → {out}", err=True)
