"""Streaming object features out of a :class:`FeatureStore` in seeded, shuffled batches.

Only one shard plus a bounded shuffle buffer is in memory at a time, so training on the full
Action Genome does not need all features in RAM.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch

from scenellm.features.store import FeatureStore


def split_videos(store: FeatureStore, split: str) -> list[str]:
    manifest = store.load_manifest()["shards"]
    return [v for v in sorted(manifest) if manifest[v].get("split") == split]


def holdout_split(videos: list[str], fraction: float, salt: str) -> tuple[list[str], list[str]]:
    """Deterministic (train, held-out) split of video ids by a salted hash."""
    def score(video: str) -> float:
        digest = hashlib.sha256(f"{salt}:{video}".encode()).hexdigest()
        return int(digest[:8], 16) / 0xFFFFFFFF

    held = [v for v in videos if score(v) < fraction]
    if not held and len(videos) > 1:
        held = [min(videos, key=score)]
    return [v for v in videos if v not in held], held


def feature_batches(store: FeatureStore, videos: list[str], batch_size: int, seed: int,
                    epoch: int, buffer_batches: int = 16, key: str = "obj_feats",
                    shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Batches (≤ batch_size, F) of ``key`` rows from ``videos``' shards."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = [videos[i] for i in torch.randperm(len(videos), generator=gen)] if shuffle else videos
    buffer: list[torch.Tensor] = []
    size = 0
    for video in order:
        rows = store.read_shard(video)[key]
        buffer.append(rows)
        size += len(rows)
        if size >= batch_size * buffer_batches:
            yield from _drain(buffer, batch_size, gen, shuffle, keep_tail=True)
            size = sum(len(b) for b in buffer)
    yield from _drain(buffer, batch_size, gen, shuffle, keep_tail=False)


def _drain(buffer: list[torch.Tensor], batch_size: int, gen: torch.Generator, shuffle: bool,
           keep_tail: bool) -> Iterator[torch.Tensor]:
    if not buffer:
        return
    rows = torch.cat(buffer)
    if shuffle:
        rows = rows[torch.randperm(len(rows), generator=gen)]
    buffer.clear()
    full = len(rows) // batch_size * batch_size
    for start in range(0, full, batch_size):
        yield rows[start:start + batch_size]
    tail = rows[full:]
    if len(tail):
        if keep_tail:
            buffer.append(tail)
        else:
            yield tail
