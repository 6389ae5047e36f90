"""Batch prediction to files: ``scenellm predict`` writes one file; the Prefect ``predict``
flow maps :func:`predict_shard` over video shards and :func:`combine_shards` joins them.

Resumable: a shard is written atomically under a name that hashes its model, data root,
mode and videos, so a re-run skips every finished shard and never reads a half-written one.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from scenellm.errors import PredictionRequestError
from scenellm.inference.scene_graphs import MODES
from scenellm.io import atomic_write_bytes

FORMATS = (".jsonl", ".parquet")
_PREDICT = threading.RLock()  # one forward pass at a time: tasks share one model


def requests(data_root: str | Path, videos: list[str], mode: str) -> pd.DataFrame:
    return pd.DataFrame({"data_root": str(data_root), "video": list(videos), "mode": mode})


def encode(table: pd.DataFrame, suffix: str) -> bytes:
    """The table as JSON lines (one triplet per line) or parquet."""
    if suffix == ".jsonl":  # json's float repr round-trips exactly (pandas' keeps 10 digits)
        return "".join(json.dumps(row, default=lambda x: x.item()) + "\n"
                       for row in table.to_dict("records")).encode()
    if suffix == ".parquet":
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise PredictionRequestError(f"output suffix {suffix!r}: write .jsonl or .parquet.")


def write_table(table: pd.DataFrame, path: Path) -> Path:
    path = Path(path)
    data = encode(table, path.suffix.lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def all_videos(predictor, data_root: str | Path) -> list[str]:
    """Every video of ``data_root`` kept after STTran's filtering, sorted."""
    return sorted(predictor.source(str(data_root)).shards.frames)


def shards(videos: list[str], size: int) -> list[list[str]]:
    return [videos[i:i + size] for i in range(0, len(videos), size)]


def shard_path(folder: Path, index: int, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(folder) / f"shard-{index:05d}-{digest}.parquet"


def predict_shard(predictor, data_root: str, videos: list[str], mode: str,
                  path: Path) -> tuple[Path, bool]:
    """``(path, computed)``: the shard's predictions, computed unless already written."""
    if path.is_file():
        return path, False
    with _PREDICT:
        table = predictor.predict(requests(data_root, videos, mode))
    return write_table(table, path), True


def combine_shards(paths: list[Path], out: Path) -> pd.DataFrame:
    table = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    write_table(table, out)
    return table


@dataclass(frozen=True)
class BatchJob:
    """A planned batch prediction: the model, the data and its version, the shards (videos
    and the file each is written to) and the combined output file."""

    model: str
    ref: Any
    data_root: str
    data_version: str
    mode: str
    shards: list[tuple[list[str], str]]
    out: str


_PREDICTORS: dict[tuple[str, str], tuple[Any, Any]] = {}


def cached_predictor(model: str, tracking_uri: str) -> tuple[Any, Any]:
    """``(predictor, ModelRef)``, loaded once per process (a flow's tasks share it)."""
    from scenellm.tracking.models import load_predictor

    with _PREDICT:
        if (model, tracking_uri) not in _PREDICTORS:
            _PREDICTORS[model, tracking_uri] = load_predictor(model, tracking_uri)
    return _PREDICTORS[model, tracking_uri]


def plan_batch(project, model: str, data_root: str | Path, videos: list[str] | None,
               mode: str, out: str | Path | None, shard_size: int) -> BatchJob:
    """Shards of ``shard_size`` videos (default: every kept video), each under a name that
    hashes the model, data version, mode and its videos; ``out`` is the output folder
    (default ``<home>/predictions/<model>-<mode>/``)."""
    from scenellm.data.version import data_version

    if mode not in MODES:
        raise PredictionRequestError(f"mode {mode!r}: choose one of {', '.join(MODES)}.")
    if shard_size < 1:
        raise PredictionRequestError(f"shard size {shard_size}: give at least 1.")
    predictor, ref = cached_predictor(model, project.mlflow_tracking_uri)
    root = Path(data_root).expanduser().resolve()
    source = predictor.source(str(root))
    chosen = [source.video_id(v) for v in videos] if videos else all_videos(predictor, root)
    version = data_version(root, cache_dir=project.home)
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in model)
    folder = Path(out) if out else project.home / "predictions" / f"{slug}-{mode}"
    planned = [(part, str(shard_path(folder / "shards", i, {
        "model": ref.uri, "data": version, "mode": mode, "videos": part})))
        for i, part in enumerate(shards(chosen, shard_size))]
    return BatchJob(model, ref, str(root), version, mode, planned,
                    str(folder / "predictions.parquet"))


def log_batch(project, job: BatchJob, outcome: dict, flow_run_id: str | None = None) -> str:
    """One MLflow run ``predict`` recording the model version used, the data version and
    the outcome (videos, frames, triplets, shards computed / reused, frames per second)."""
    from scenellm.config.load import load_params
    from scenellm.tracking.runs import Tracker

    experiment = load_params(project.params_dir).orchestration.experiment
    tracker = Tracker(project.mlflow_tracking_uri, experiment)
    tags = {**job.ref.tags(), "scenellm.data_md5": job.data_version, "scenellm.kind": "predict",
            "scenellm.predict.mode": job.mode, "scenellm.predict.output": job.out}
    if flow_run_id:
        tags["scenellm.prefect_flow_run_id"] = flow_run_id
    params = {"model": job.model, "data_root": job.data_root, "mode": job.mode,
              "shards": len(job.shards)}
    with tracker.parent_run("predict", tags, params) as run_id:
        tracker.log_metrics(run_id, {k: v for k, v in outcome.items()
                                     if isinstance(v, int | float)})
        tracker.log_dict(run_id, outcome, "predict_summary.json")
    return run_id
