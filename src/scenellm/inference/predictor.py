"""Requests → scene graphs: ``ScenePredictor.predict`` takes a DataFrame with one row per
video (``data_root``, ``video``, optional ``mode``: ``predcls`` (default, ground-truth boxes
and labels), ``sgcls`` (ground-truth boxes) or ``sgdet`` (the bundle's detection head finds
the boxes)) and returns the triplet table of :mod:`scenellm.inference.scene_graphs`, videos
in request order.

A data root is read as the prepare stage reads it (STTran's filtering with the model's
``min_frames``, every kept frame checked); a video's detector features are computed from its
frames by the features stage's own function, on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from scenellm.errors import PredictionRequestError
from scenellm.inference.scene_graphs import MODES, empty_table, scene_graphs, triplet_table


class ComputedShards:
    """A feature store whose shards are computed from the frames when first read."""

    def __init__(self, detector, root: Path, tables: dict, device, batch_size: int) -> None:
        self.detector, self.root, self.device, self.batch_size = detector, root, device, batch_size
        self.frames = dict(tuple(tables["frames"].groupby("video_id")))
        self.objects = dict(tuple(tables["objects"].groupby("video_id")))
        self.empty = tables["objects"].iloc[:0]
        self.shards: dict[str, dict] = {}

    def load_manifest(self) -> dict:
        return {"shards": {v: {"split": str(f["split"].iloc[0])} for v, f in self.frames.items()}}

    def read_shard(self, video: str) -> dict:
        from scenellm.features.frames import video_shard

        if video not in self.shards:
            self.shards[video] = video_shard(self.detector, self.root, self.frames[video],
                                             self.objects.get(video, self.empty), self.device,
                                             self.batch_size)[0]
        return self.shards[video]


class DetectedShards(ComputedShards):
    """Shards over SGDET's nodes: the detection head's boxes, computed from the frames as the
    detect stage computes them, on first read."""

    def __init__(self, detector, head, config: dict, root: Path, tables: dict, device,
                 batch_size: int) -> None:
        super().__init__(detector, root, tables, device, batch_size)
        self.head, self.config = head, config

    def read_shard(self, video: str) -> dict:
        from scenellm.data.vocab import PERSON_ID
        from scenellm.features.detection_head import detect_nodes, detected_shard

        if video not in self.shards:
            frames = self.frames[video].sort_values("frame_index")
            batch = self.config["batch_size"]  # the detect stage's, for equal float sums
            found = detect_nodes(self.detector, self.head, self.root, frames, self.device,
                                 batch, self.config["budget"], self.config["min_score"],
                                 PERSON_ID)
            self.shards[video] = detected_shard(self.detector, self.root, frames, found,
                                                self.device, batch, PERSON_ID)[0]
        return self.shards[video]


class DataSource:
    """One data root's filtered tables and its videos' features."""

    def __init__(self, root: Path, predictor: ScenePredictor) -> None:
        from scenellm.data.ag import load_action_genome
        from scenellm.data.tables import build_tables
        from scenellm.model.scene_graph_data import SceneGraphData

        tables = build_tables(load_action_genome(root, min_frames=predictor.meta["min_frames"]))
        self.shards = ComputedShards(predictor.detector, root, tables, predictor.device,
                                     predictor.meta["detector_batch_size"])
        self.data = SceneGraphData.from_tables(self.shards, tables)
        self.detected = None
        if predictor.head is not None:
            self.detected_shards = DetectedShards(
                predictor.detector, *predictor.head, root, tables, predictor.device,
                predictor.meta["detector_batch_size"])
            self.detected = SceneGraphData.from_tables(self.detected_shards, tables)
        self.root = root

    def for_mode(self, mode: str):
        """The data a mode reads: ground-truth boxes, or (SGDET) the detector's nodes."""
        if mode != "sgdet":
            return self.data
        if self.detected is None:
            raise PredictionRequestError(
                "this model has no detection head (it was trained without sgdet in "
                "evaluate.modes, or its SGDET boxes came from a detections file), so it "
                "cannot predict in sgdet; use predcls or sgcls, or register a model trained "
                "with --set 'evaluate.modes=[predcls,sgcls,sgdet]'.")
        return self.detected

    def forget(self, video: str) -> None:
        self.shards.shards.pop(video, None)  # features are cheap next to memory
        if self.detected is not None:
            self.detected_shards.shards.pop(video, None)

    def video_id(self, name: str) -> str:
        """``name`` as a kept video id (``VID`` or ``VID.mp4``)."""
        for candidate in (name, f"{name}.mp4"):
            if candidate in self.shards.frames:
                return candidate
        videos = sorted(self.shards.frames)
        raise PredictionRequestError(
            f"{self.root}: no video {name!r} among its {len(videos)} videos kept after STTran's "
            f"filtering (more than 2 frames with a visible object), e.g. {', '.join(videos[:3])}.")


def data_key(root: Path) -> tuple:
    """What a cached data root is valid for: its annotation files' sizes and times."""
    stats = [p.stat() for p in sorted((root / "annotations").glob("*"))]
    return (str(root), tuple((s.st_size, s.st_mtime_ns, s.st_ino) for s in stats))


class ScenePredictor:
    """The packaged model: SceneLLM, its detector and the bundle's params (``meta``)."""

    def __init__(self, model, detector, meta: dict, device, head=None) -> None:
        self.model, self.detector, self.meta, self.device = model, detector, meta, device
        self.head = head  # (CenterHead, head.json) for SGDET, or None
        self._sources: dict[str, tuple[tuple, DataSource]] = {}

    def source(self, data_root: str) -> DataSource:
        root = Path(os.path.expanduser(str(data_root))).resolve()
        if not (root / "annotations").is_dir():
            raise PredictionRequestError(f"{root}: not an Action Genome folder (no annotations/); "
                                         "pass the folder that holds annotations/ and frames/.")
        key = data_key(root)
        cached = self._sources.get(str(root))
        if cached is None or cached[0] != key:
            cached = (key, DataSource(root, self))
            self._sources[str(root)] = cached
        return cached[1]

    def predict(self, requests: pd.DataFrame) -> pd.DataFrame:
        """The triplet table of every requested video (see the module docstring)."""
        tables = []
        for root, video, mode in read_requests(requests):
            source = self.source(root)
            video = source.video_id(video)
            data = source.for_mode(mode)
            for batch, out in scene_graphs(self.model, data, [video], mode, self.device):
                tables.append(triplet_table(data, batch, out, mode))
            source.forget(video)
        return pd.concat(tables, ignore_index=True) if tables else empty_table()


def read_requests(requests: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(data_root, video, mode)`` of each request row, checked."""
    if not isinstance(requests, pd.DataFrame):
        requests = pd.DataFrame(requests)
    missing = [c for c in ("data_root", "video") if c not in requests.columns]
    if missing:
        raise PredictionRequestError(f"prediction requests need the columns data_root and video "
                                     f"(optional: mode); missing {', '.join(missing)}.")
    out = []
    for row in requests.to_dict("records"):
        mode = row.get("mode")
        mode = "predcls" if mode is None or pd.isna(mode) or mode == "" else str(mode)
        if mode not in MODES:
            raise PredictionRequestError(f"mode {mode!r} (video {row['video']!r}): choose one of "
                                         f"{', '.join(MODES)}.")
        if not isinstance(row["video"], str) or not isinstance(row["data_root"], str):
            raise PredictionRequestError("data_root and video must be strings.")
        out.append((row["data_root"], row["video"], mode))
    return out
