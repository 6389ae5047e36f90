"""One video's feature shard: its tensor schema, byte-deterministic encoding and lazy view.

N objects (every kept frame's person first, then its objects), P (person, object) pairs,
F feature dim. A shard is a safetensors file holding the tensors of ``SHARD_SCHEMA`` (plus
any extra tensors a stage adds) and string metadata with ``box_source`` ("gt" | "proposals").
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

BOX_SOURCES = ("gt", "proposals")
# name → (dtype, shape with "N"/"P"/"F" for the shard's sizes)
SHARD_SCHEMA: dict[str, tuple[torch.dtype, tuple[str | int, ...]]] = {
    "obj_feats": (torch.float32, ("N", "F")),
    "boxes": (torch.float32, ("N", 4)),  # xyxy, input-image pixels
    "labels": (torch.int64, ("N",)),  # STTran ids, person = 1
    "scores": (torch.float32, ("N",)),  # 1.0 for ground truth, detector score for proposals
    "frame_index": (torch.int64, ("N",)),  # kept-frame position within the video
    "obj_index": (torch.int64, ("N",)),  # 0 person, 1..n objects in annotation order, -1 proposal
    "pair_idx": (torch.int64, ("P", 2)),  # (person, object) rows into N
    "im_idx": (torch.int64, ("P",)),  # kept-frame position of each pair
    "union_feats": (torch.float32, ("P", "F")),
}


def validate_shard(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Raise ValueError naming the first tensor or metadata field that breaks SHARD_SCHEMA."""
    missing = [name for name in SHARD_SCHEMA if name not in tensors]
    if missing:
        raise ValueError(f"shard is missing tensors {missing}")
    sizes = {"N": tensors["obj_feats"].shape[0], "P": tensors["pair_idx"].shape[0]}
    sizes["F"] = tensors["obj_feats"].shape[1] if tensors["obj_feats"].ndim == 2 else -1
    for name, (dtype, shape) in SHARD_SCHEMA.items():
        expected = tuple(sizes.get(d, d) for d in shape)
        t = tensors[name]
        if t.dtype != dtype or tuple(t.shape) != expected:
            raise ValueError(
                f"shard tensor {name!r} must be {dtype} of shape {expected} "
                f"({'×'.join(map(str, shape))}), got {t.dtype} {tuple(t.shape)}"
            )
    pair_idx = tensors["pair_idx"]
    if pair_idx.numel() and (pair_idx.min() < 0 or pair_idx.max() >= sizes["N"]):
        raise ValueError(f"shard tensor 'pair_idx' must index objects 0..{sizes['N'] - 1}")
    if metadata.get("box_source") not in BOX_SOURCES:
        raise ValueError(f"shard metadata 'box_source' must be one of {BOX_SOURCES}")
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ValueError(f"shard metadata keys and values must be strings: {bad}")


def serialize_shard(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with the metadata keys sorted.

    safetensors writes tensors in a fixed order but its metadata map in hash order, which
    changes between processes; we rewrite the header with sorted metadata (data offsets are
    relative to the data section, so they stay valid) and pad it to 8 bytes as it does.
    """
    blob = safetensors_save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()})
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    header.pop("__metadata__", None)
    header = {"__metadata__": dict(sorted(metadata.items())), **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]


def shard_entry(
    tensors: dict[str, torch.Tensor], sha256: str, num_frames: int | None = None
) -> dict[str, Any]:
    """Manifest record of one shard; ``num_frames`` defaults to the distinct frame_index count
    (pass the true count when a kept frame may have no object, e.g. SGDET proposals)."""
    if num_frames is None:
        num_frames = int(torch.unique(tensors["frame_index"]).numel())
    return {
        "sha256": sha256,
        "num_objects": int(tensors["obj_feats"].shape[0]),
        "num_pairs": int(tensors["pair_idx"].shape[0]),
        "num_frames": int(num_frames),
    }


class ShardView(Mapping[str, torch.Tensor]):
    """Read-only mapping name → tensor over one shard file.

    The header is read at construction; each tensor is read from the memory-mapped file on
    first access and then kept. ``load()`` returns every tensor as a plain dict.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with safe_open(self.path, framework="pt") as f:
            self._names = sorted(f.keys())
            self.metadata: dict[str, str] = dict(f.metadata() or {})
        self._loaded: dict[str, torch.Tensor] = {}

    @property
    def box_source(self) -> str:
        return self.metadata["box_source"]

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._loaded:
            if name not in self._names:
                raise KeyError(f"{self.path.name} has no tensor {name!r}; it has {self._names}")
            with safe_open(self.path, framework="pt") as f:
                self._loaded[name] = f.get_tensor(name)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def load(self) -> dict[str, torch.Tensor]:
        return {name: self[name] for name in self._names}
