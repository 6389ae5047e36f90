"""Scene graphs as pictures: each frame with its boxes, the top predicted relations (a tick
marks those in the ground truth) and the ground truth beside, as an animated GIF or an HTML
page (``scenellm show``; the evaluate stage draws a few test videos into ``examples/``).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import pandas as pd

PANEL = 330  # width of the text panel beside the frame, pixels
MIN_WIDTH = 480  # frames are scaled up by a whole factor to at least this width
COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
          "#bfef45", "#469990", "#9a6324")
PERSON_COLOR = "#ffe119"


def frame_graphs(data, predictions: pd.DataFrame, video: str, top: int) -> list[dict]:
    """Per kept frame of ``video``: key, boxes ``[(object_index, name, xyxy)]``, the ``top``
    predicted triplets and the ground-truth triplets, each ``(subject, predicate, object,
    object_index[, score])``."""
    frames = data.video_rows("frames", video).sort_values("frame_index")
    objects = data.video_rows("objects", video)
    relations = data.video_rows("relations", video)
    predicted = predictions[predictions["video"] == video]
    out = []
    for frame in frames.itertuples():
        objs = objects[objects["frame_key"] == frame.frame_key].sort_values("object_idx")
        boxes = [(0, "person", (frame.person_x1, frame.person_y1, frame.person_x2,
                                frame.person_y2))]
        boxes += [(o.object_idx, o.class_name, (o.x1, o.y1, o.x2, o.y2))
                  for o in objs.itertuples()]
        names = {o.object_idx: o.class_name for o in objs.itertuples()}
        truth = []
        for r in relations[relations["frame_key"] == frame.frame_key].itertuples():
            thing = names[r.object_idx]
            pair = (thing, "person") if r.kind == "spatial" else ("person", thing)
            truth.append((pair[0], r.predicate, pair[1], r.object_idx))
        rows = predicted[predicted["frame_index"] == frame.frame_index].sort_values("rank")
        top_rows = [(p.subject, p.predicate, p.object, p.object_index, p.score)
                    for p in rows.head(top).itertuples()]
        out.append({"key": frame.frame_key, "boxes": boxes, "predicted": top_rows,
                    "truth": truth})
    return out


def draw_frame(data_root: Path, graph: dict, top: int, min_width: int = MIN_WIDTH):
    """One picture: the scaled frame with labelled boxes, the text panel on its right."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    with Image.open(Path(data_root) / "frames" / graph["key"]) as image:
        frame = image.convert("RGB")
    scale = max(1, math.ceil(min_width / frame.width))
    frame = frame.resize((frame.width * scale, frame.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (frame.width + PANEL, max(frame.height, 40 + 14 * (2 * top + 12))),
                       "white")
    canvas.paste(frame, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, name, box in graph["boxes"]:
        color = PERSON_COLOR if index == 0 else COLORS[(index - 1) % len(COLORS)]
        xyxy = [v * scale for v in box]
        draw.rectangle(xyxy, outline=color, width=2)
        label = f"{name}" + (f" #{index}" if index else "")
        corner = (xyxy[0] + 2, xyxy[1] + 2)
        draw.rectangle(draw.textbbox(corner, label, font=font), fill=color)
        draw.text(corner, label, fill="black", font=font)
    truth = {t[:4] for t in graph["truth"]}
    x, y = frame.width + 8, 6
    draw.text((x, y), graph["key"], fill="black", font=font)
    y += 18
    draw.text((x, y), f"predicted, top {top} (+ = in ground truth)", fill="black", font=font)
    for sub, pred, obj, index, score in graph["predicted"]:
        y += 14
        mark = "+" if (sub, pred, obj, index) in truth else " "
        draw.text((x, y), f"{mark} {sub} {pred} {obj} #{index}  {score:.2f}", fill="#1a1a8c",
                  font=font)
    y += 22
    draw.text((x, y), f"ground truth ({len(graph['truth'])})", fill="black", font=font)
    for sub, pred, obj, index in graph["truth"][:12]:
        y += 14
        draw.text((x, y), f"  {sub} {pred} {obj} #{index}", fill="#1f6f1f", font=font)
    return canvas


def render(data_root: Path, data, predictions: pd.DataFrame, video: str, top: int = 5,
           min_width: int = MIN_WIDTH):
    """``(pictures, graphs)``: one PIL image and one :func:`frame_graphs` entry per frame."""
    graphs = frame_graphs(data, predictions, video, top)
    return [draw_frame(data_root, g, top, min_width) for g in graphs], graphs


def save_gif(pictures: list, path: Path, ms_per_frame: int = 700) -> None:
    from scenellm.io import atomic_write_bytes

    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:],
                     duration=ms_per_frame, loop=0)
    atomic_write_bytes(path, buffer.getvalue())


def save_html(pictures: list, graphs: list[dict], video: str, path: Path) -> None:
    """A self-contained page: every frame as an inline PNG with its relation lists."""
    from scenellm.io import atomic_write_text

    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(video)}</title>",
             "<style>body{font-family:sans-serif}section{margin:1em 0}"
             "td{padding:0 .6em}</style>", f"<h1>Scene graph of {html.escape(video)}</h1>"]
    for picture, graph in zip(pictures, graphs, strict=True):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{html.escape(p)}</td>"
                       f"<td>{html.escape(o)} #{i}</td><td>{score:.3f}</td></tr>"
                       for s, p, o, i, score in graph["predicted"])
        parts.append(f"<section><h2>{html.escape(graph['key'])}</h2><img alt='frame' "
                     f"src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"
                     f"<table class='predicted'>{rows}</table></section>")
    atomic_write_text(path, "\n".join(parts) + "\n")


def save(pictures: list, graphs: list[dict], video: str, path: Path) -> Path:
    """GIF or HTML by the suffix of ``path`` (``.gif``, ``.html``)."""
    path = Path(path)
    if path.suffix.lower() == ".html":
        save_html(pictures, graphs, video, path)
    else:
        save_gif(pictures, path)
    return path


def write_examples(data_root: Path, data, predictions: pd.DataFrame, videos: list[str],
                   folder: Path, mode: str = "predcls") -> list[Path]:
    """``folder/<video>.gif`` of each video, from its ``mode`` predictions."""
    folder.mkdir(parents=True, exist_ok=True)
    predictions = predictions[predictions["mode"] == mode]
    paths = []
    for video in videos:
        pictures, _ = render(data_root, data, predictions, video, min_width=320)  # ~0.5 MB
        paths.append(folder / f"{Path(video).stem}.gif")
        save_gif(pictures, paths[-1])
    return paths
