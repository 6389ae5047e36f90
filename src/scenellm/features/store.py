"""FeatureStore: cached detector features, one safetensors shard per video.

Layout of a store directory::

    manifest.json                   {format_version, data_version, detector_config,
                                     feature_dim, shards: {video_id: {sha256, num_objects,
                                     num_pairs, num_frames}}}
    shards/<video_id>.safetensors   one video's tensors (``scenellm.features.shard``)

Shard and manifest writes are atomic (:func:`scenellm.io.atomic_write_bytes`) and byte-deterministic,
so equal tensors give equal sha256 across processes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from scenellm.features.shard import ShardView, serialize_shard, validate_shard
from scenellm.io import atomic_write_bytes, sha256_file

FORMAT_VERSION = 1
_VIDEO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class FeatureStore:
    """Directory of per-video feature shards plus a manifest with their hashes."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.shard_dir = self.root / "shards"
        self.manifest_path = self.root / "manifest.json"
        self._manifest_cache: tuple[tuple[int, int], dict[str, Any]] | None = None

    def shard_path(self, video_id: str) -> Path:
        if not _VIDEO_ID.match(video_id):
            raise ValueError(f"video id {video_id!r} is not a safe file name")
        return self.shard_dir / f"{video_id}.safetensors"

    def write_shard(
        self, video_id: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
    ) -> str:
        """Validate, write atomically and return the shard file's sha256."""
        validate_shard(tensors, metadata)
        path = self.shard_path(video_id)
        data = serialize_shard(tensors, metadata)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        return hashlib.sha256(data).hexdigest()

    def has_valid_shard(self, video_id: str, expected_sha: str | None = None) -> bool:
        """True when the shard file exists and hashes to ``expected_sha`` (default: the
        manifest's record; False when the manifest or its record is missing)."""
        path = self.shard_path(video_id)
        if not path.is_file():
            return False
        if expected_sha is None:
            if not self.manifest_path.is_file():
                return False
            entry = self.load_manifest()["shards"].get(video_id)
            if entry is None:
                return False
            expected_sha = entry["sha256"]
        return sha256_file(path) == expected_sha

    def read_shard(self, video_id: str) -> ShardView:
        """Lazy, memory-mapped view of one shard; tensors load on first access."""
        path = self.shard_path(video_id)
        if not path.is_file():
            raise FileNotFoundError(f"feature store {self.root} has no shard for {video_id!r}")
        return ShardView(path)

    def iter_shards(self, video_ids: list[str] | None = None) -> Iterator[tuple[str, ShardView]]:
        """(video_id, ShardView) for ``video_ids`` (default: the manifest's, sorted)."""
        for video_id in self.video_ids() if video_ids is None else video_ids:
            yield video_id, self.read_shard(video_id)

    def video_ids(self) -> list[str]:
        """Sorted ids of the shards the manifest records."""
        return sorted(self.load_manifest()["shards"])

    def write_manifest(
        self,
        data_version: str,
        detector_config: dict[str, Any],
        feature_dim: int,
        shards: dict[str, dict[str, Any]],
    ) -> Path:
        """Write manifest.json atomically (sorted keys, so equal content → equal bytes)."""
        manifest = {
            "format_version": FORMAT_VERSION,
            "data_version": data_version,
            "detector_config": detector_config,
            "feature_dim": int(feature_dim),
            "shards": shards,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(manifest, sort_keys=True, indent=2) + "\n"
        atomic_write_bytes(self.manifest_path, text.encode())
        self._manifest_cache = None
        return self.manifest_path

    def load_manifest(self) -> dict[str, Any]:
        """Parsed manifest.json, cached while the file's mtime and size are unchanged."""
        try:
            stat = self.manifest_path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"feature store {self.root} has no manifest.json; run the features stage"
            ) from None
        key = (stat.st_mtime_ns, stat.st_size)
        if self._manifest_cache is None or self._manifest_cache[0] != key:
            manifest = json.loads(self.manifest_path.read_text())
            if manifest.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"{self.manifest_path}: format_version {manifest.get('format_version')} "
                    f"is not {FORMAT_VERSION}; rebuild the feature store"
                )
            self._manifest_cache = (key, manifest)
        return self._manifest_cache[1]
