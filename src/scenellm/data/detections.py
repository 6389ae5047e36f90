"""Detections brought by the user for SGDET: an ``.npz`` file of boxes per frame.

The file (read with ``numpy.load(path, allow_pickle=False)``; written by :meth:`Detections.write`)
holds five arrays; ``F`` frames, ``N = counts.sum()`` detections, frame by frame:

- ``frame_keys`` (F,) unicode: Action Genome frame keys ``VID.mp4/FRAME.png``, each once;
- ``counts`` (F,) integer: detections of each frame, in ``frame_keys`` order (0 is allowed);
- ``boxes`` (N, 4) real: ``x1, y1, x2, y2`` in pixels of the original frame, with
  ``x2 > x1`` and ``y2 > y1``, all finite;
- ``labels`` (N,) unicode: AG object class names as the pickles write them (``person``,
  ``cup/glass/bottle``, ``sofa/couch`` ...) or as ``object_classes.txt`` does
  (``cupglassbottle``, ``sofacouch`` ...);
- ``scores`` (N,) real in [0, 1]: detector confidence.

Rows ``counts[:i].sum()`` up to ``counts[:i + 1].sum()`` are frame ``i``'s detections.
Object (pickled) arrays are refused. In memory, boxes are float32 (k, 4), labels STTran ids
int64 (``vocab.STTRAN_OBJECT_CLASSES`` index: person = ``vocab.PERSON_ID`` = 1) and scores
float32, per frame.

A frame the file lacks has no detections: :meth:`Detections.for_frame` returns empty arrays,
unless ``require=True`` (then a one-line :class:`DataError`); :meth:`Detections.check_against`
lists the frames of a dataset the file lacks.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scenellm.data import vocab
from scenellm.data.frame_keys import key_problem
from scenellm.errors import DataError
from scenellm.io import atomic_write_bytes

ARRAYS = ("frame_keys", "counts", "boxes", "labels", "scores")
# STTran id of every accepted name: the pickles' names and the raw class-file names.
CLASS_IDS: dict[str, int] = {
    **{name: i + 1 for i, name in enumerate(vocab.RAW_OBJECT_NAMES)},
    **{name: i + 1 for i, name in enumerate(vocab.OBJECT_CLASSES)},
}
_REAL = "fiu"  # numpy kinds accepted for boxes and scores


class FrameDetections(NamedTuple):
    """One frame's detections: ``boxes`` (k, 4) float32 xyxy, ``labels`` (k,) int64 STTran
    ids, ``scores`` (k,) float32."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray


EMPTY = FrameDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                        np.zeros(0, np.float32))


def _row(source: str, keys: np.ndarray, counts: np.ndarray, row: int) -> str:
    """``file: frame 'KEY' detection j (row r)`` for error messages."""
    frame = int(np.searchsorted(np.cumsum(counts), row, side="right"))
    start = int(counts[:frame].sum())
    return f"{source}: frame {str(keys[frame])!r} detection {row - start} (row {row})"


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _check_shapes(source: str, arrays: dict[str, np.ndarray]) -> None:
    kinds = {"frame_keys": "U", "counts": "iu", "boxes": _REAL, "labels": "U", "scores": _REAL}
    for name, allowed in kinds.items():
        if arrays[name].dtype.kind not in allowed:
            wanted = "unicode strings" if allowed == "U" else (
                "integers" if allowed == "iu" else "real numbers")
            raise DataError(f"{source}: array '{name}' has dtype {arrays[name].dtype}, expected "
                            f"{wanted}; see docs/detections.md.")
    n_frames, n = len(arrays["frame_keys"]), len(arrays["labels"])
    shapes = {"frame_keys": (n_frames,), "counts": (n_frames,), "boxes": (n, 4),
              "labels": (n,), "scores": (n,)}
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise DataError(f"{source}: array '{name}' has shape {arrays[name].shape}, expected "
                            f"{shape} ({n_frames} frame keys, {n} labels).")


def _check_values(source: str, keys: np.ndarray, counts: np.ndarray, boxes: np.ndarray,
                  scores: np.ndarray) -> None:
    """Frame keys, counts, boxes and scores; the first offending frame or row is named."""
    for key in keys:
        problem = key_problem(str(key))
        if problem:
            raise DataError(f"{source}: frame key {str(key)!r} {problem}; use AG frame keys.")
    unique, first, seen = np.unique(keys, return_index=True, return_counts=True)
    if (seen > 1).any():
        dup = unique[seen > 1][np.argmin(first[seen > 1])]
        raise DataError(f"{source}: frame key {str(dup)!r} appears {seen.max()} times; list "
                        "each frame once.")
    bad = _first(counts < 0)
    if bad is not None:
        raise DataError(f"{source}: frame {str(keys[bad])!r} has a negative count "
                        f"{int(counts[bad])}.")
    if int(counts.sum()) != len(boxes):
        raise DataError(f"{source}: counts sum to {int(counts.sum())} but there are "
                        f"{len(boxes)} detections; counts[i] is frame i's number of rows.")
    checks = (
        (~np.isfinite(boxes).all(1), "has a non-finite box"),
        (boxes[:, 2] <= boxes[:, 0], "has x2 <= x1"),
        (boxes[:, 3] <= boxes[:, 1], "has y2 <= y1"),
        (~((scores >= 0) & (scores <= 1)), "has a score outside [0, 1]"),
    )
    for mask, problem in checks:
        bad = _first(mask)
        if bad is not None:
            value = scores[bad] if "score" in problem else boxes[bad].tolist()
            raise DataError(f"{_row(source, keys, counts, bad)} {problem} ({value}); boxes are "
                            "x1, y1, x2, y2 pixels, scores in [0, 1].")


def label_ids(source: str, keys: np.ndarray, counts: np.ndarray, names: np.ndarray
              ) -> np.ndarray:
    """STTran ids (N,) of class ``names``; an unknown name is a one-line :class:`DataError`."""
    unique, inverse = np.unique(names, return_inverse=True)
    ids = np.array([CLASS_IDS.get(str(n), -1) for n in unique], dtype=np.int64)
    if (ids < 0).any():
        row = _first(ids[inverse] < 0)
        known = ", ".join(repr(n) for n in vocab.OBJECT_CLASSES[:4])
        raise DataError(f"{_row(source, keys, counts, row)} has unknown class "
                        f"{str(names[row])!r}; use Action Genome names ({known}, ...; 36 in "
                        "all, see scenellm.data.vocab).")
    return ids[inverse].reshape(-1)


@dataclass(frozen=True, eq=False)
class Detections:
    """Per-frame detections in file order; build with :meth:`from_flat` (validates) or
    :meth:`read`."""

    frame_keys: tuple[str, ...]
    per_frame: tuple[FrameDetections, ...]
    source: str = "detections"
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {k: i for i, k in enumerate(self.frame_keys)})

    @classmethod
    def from_flat(cls, frame_keys: Iterable[str], counts, boxes, labels, scores,
                  source: str = "detections") -> Detections:
        """Validated detections from flat arrays: ``labels`` STTran ids (N,) or class names."""
        arrays = {"frame_keys": np.asarray(list(frame_keys), dtype=str),
                  "counts": np.asarray(counts), "boxes": np.asarray(boxes),
                  "labels": np.asarray(labels), "scores": np.asarray(scores)}
        if arrays["boxes"].size == 0:
            arrays["boxes"] = arrays["boxes"].reshape(-1, 4)
        names = arrays["labels"]
        if names.size == 0:
            arrays["labels"] = np.zeros(0, dtype=str)
        elif names.dtype.kind in "iu":  # ids become names; a bad id names itself
            top = len(vocab.STTRAN_OBJECT_CLASSES) - 1
            text = np.asarray(vocab.STTRAN_OBJECT_CLASSES, dtype="<U64")[np.clip(names, 0, top)]
            for row in np.flatnonzero((names < 1) | (names > top)):
                text[row] = f"STTran id {names[row]} (1 = person .. {top})"
            arrays["labels"] = text
        return cls._validated(source, arrays)

    @classmethod
    def _validated(cls, source: str, arrays: dict[str, np.ndarray]) -> Detections:
        _check_shapes(source, arrays)
        keys, counts = arrays["frame_keys"], arrays["counts"].astype(np.int64)
        boxes = arrays["boxes"].astype(np.float64)
        scores = arrays["scores"].astype(np.float64)
        _check_values(source, keys, counts, boxes, scores)
        ids = label_ids(source, keys, counts, arrays["labels"])
        cuts = np.cumsum(counts)[:-1]
        per_frame = tuple(
            FrameDetections(*parts) for parts in zip(
                np.split(boxes.astype(np.float32), cuts), np.split(ids, cuts),
                np.split(scores.astype(np.float32), cuts), strict=True))
        return cls(tuple(str(k) for k in keys), per_frame if len(keys) else (), source)

    @classmethod
    def read(cls, path: str | Path) -> Detections:
        """Load and validate a detections ``.npz`` (format: the module docstring)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: detections file not found; expected an .npz file "
                            "(see docs/detections.md).")
        with open(path, "rb") as handle:
            magic = handle.read(6)
        if not magic.startswith(b"PK"):  # numpy would read anything else as a pickle or .npy
            kind = "a single .npy array" if magic == b"\x93NUMPY" else "not a zip archive"
            raise DataError(f"{path}: {kind}, not an .npz archive of {', '.join(ARRAYS)}.")
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [name for name in ARRAYS if name not in npz.files]
                if missing:
                    raise DataError(f"{path}: missing array(s) {', '.join(missing)}; a "
                                    f"detections file holds {', '.join(ARRAYS)}.")
                arrays = {name: npz[name] for name in ARRAYS}
        except DataError:
            raise
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise DataError(f"{path}: holds a pickled object array, which is refused; save "
                                "strings as unicode arrays (np.asarray(names, dtype=str)).") from None
            raise DataError(f"{path}: not a readable .npz file ({' '.join(str(exc).split())[:160]})."
                            ) from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc.__class__.__name__}); "
                            "it may be truncated or corrupt.") from None
        return cls._validated(str(path), arrays)

    def write(self, path: str | Path) -> None:
        """Write the ``.npz`` atomically (built in memory, then renamed into place)."""
        boxes = [f.boxes for f in self.per_frame]
        arrays = {
            "frame_keys": np.asarray(self.frame_keys, dtype=str).reshape(-1),
            "counts": np.array([len(b) for b in boxes], dtype=np.int64),
            "boxes": np.concatenate([EMPTY.boxes, *boxes]),
            "labels": np.asarray(vocab.STTRAN_OBJECT_CLASSES, dtype=str)[
                np.concatenate([EMPTY.labels, *(f.labels for f in self.per_frame)])],
            "scores": np.concatenate([EMPTY.scores, *(f.scores for f in self.per_frame)]),
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    def frames(self) -> tuple[str, ...]:
        """Frame keys in file order."""
        return self.frame_keys

    def __len__(self) -> int:
        """Number of detections over all frames."""
        return sum(len(f.labels) for f in self.per_frame)

    def for_frame(self, key: str, require: bool = False) -> FrameDetections:
        """A frame's detections; empty for a frame the file lacks, or a :class:`DataError`
        with ``require``."""
        i = self._index.get(key)
        if i is not None:
            return self.per_frame[i]
        if require:
            raise DataError(f"{self.source}: no detections for frame {key!r}; the file must "
                            "list every evaluated frame (count 0 for a frame with none).")
        return EMPTY

    def top(self, k: int) -> Detections:
        """The ``k`` highest-scoring detections of each frame, kept in file order (ties go to
        the earlier row)."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        kept = []
        for f in self.per_frame:
            keep = np.sort(np.argsort(-f.scores, kind="stable")[:k])
            kept.append(FrameDetections(f.boxes[keep], f.labels[keep], f.scores[keep]))
        return Detections(self.frame_keys, tuple(kept), self.source)

    def missing_frames(self, frame_keys: Iterable[str]) -> list[str]:
        """The given frame keys (in their order) that the file lacks."""
        return [k for k in frame_keys if k not in self._index]

    def check_against(self, frame_keys: Iterable[str], dataset: str = "the dataset") -> None:
        """A one-line :class:`DataError` when the file lacks frames of ``dataset``."""
        keys = list(frame_keys)
        missing = self.missing_frames(keys)
        if missing:
            shown = ", ".join(repr(k) for k in missing[:3])
            raise DataError(f"{self.source}: lacks {len(missing)} of the {len(keys)} frames of "
                            f"{dataset} (first: {shown}); detect on every evaluated frame.")

    def class_counts(self) -> dict[str, int]:
        """Detections per class name, in AG class order, classes present only."""
        ids = np.concatenate([EMPTY.labels, *(f.labels for f in self.per_frame)])
        counts = np.bincount(ids, minlength=len(vocab.STTRAN_OBJECT_CLASSES))
        return {vocab.STTRAN_OBJECT_CLASSES[i]: int(c) for i, c in enumerate(counts) if c}


def frame_truth(frame) -> tuple[np.ndarray, np.ndarray]:
    """The ground truth detector metrics compare against, for a loaded
    :class:`scenellm.data.ag.FrameAnnotation`: boxes (1 + n, 4) float64 xyxy, the person
    first, and their STTran ids (1 + n,) int64."""
    boxes = np.array([frame.person_box, *(o.box for o in frame.objects)], dtype=np.float64)
    labels = np.array([vocab.PERSON_ID, *(o.class_id for o in frame.objects)], dtype=np.int64)
    return boxes, labels
