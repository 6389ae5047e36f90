"""The shape of one frame's entries in the Action Genome pickles, checked field by field.

``person_bbox.pkl[key]`` is a dict with ``bbox`` (k, 4) xyxy and ``bbox_size`` (w, h);
``object_bbox_and_relationship.pkl[key]`` is a non-empty list of dicts with ``class``,
``visible`` (bool), ``bbox`` (x, y, w, h) when visible, three relationship lists and
``metadata`` {"tag", "set"}. Every rule failure is a one-line :class:`DataError` naming the
file, the frame key and the rule, so a malformed pickle never ends in a traceback.

A box must overlap its frame and stay within one frame size of it ("far outside" is an
annotation error); a box that only slightly leaves the frame is reported by the data guard
(:mod:`scenellm.data.expectations`), which holds boxes to the frame exactly.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

import numpy as np

from scenellm.data import vocab
from scenellm.errors import DataError

MAX_SIDE = 100_000  # pixels: far above any video frame, far below integer overflow
PERSON, OBJECTS = "person_bbox.pkl", "object_bbox_and_relationship.pkl"
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlevel = 40, 40, 3


def _show(value: Any) -> str:
    """A short one-line repr of a value from the file (it may be huge or deeply nested)."""
    return " ".join(_REPR.repr(value).split())


def fail(source: str, key: str, rule: str) -> DataError:
    return DataError(f"{source}: frame {key!r}: {rule}.")


def _finite(value: Any) -> bool:
    """A real number (not a bool) that fits a finite float."""
    if not isinstance(value, int | float | np.integer | np.floating) or isinstance(
            value, bool | np.bool_):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def _pixels(value: Any) -> bool:
    return _finite(value) and float(value).is_integer() and 1 <= value <= MAX_SIDE


def frame_size(entry: Any, key: str, source: str) -> tuple[int, int]:
    """``bbox_size``: two whole numbers of pixels (width, height), 1..MAX_SIDE."""
    size = entry.get("bbox_size") if isinstance(entry, dict) else None
    values = list(size) if isinstance(size, tuple | list | np.ndarray) else None
    if values is None or len(values) != 2 or not all(_pixels(v) for v in values):
        raise fail(source, key, f"bbox_size must be (width, height) in whole pixels from 1 to "
                                f"{MAX_SIDE}, got {_show(size)}")
    return int(values[0]), int(values[1])


def _inside(box: tuple[float, ...], size: tuple[int, int]) -> bool:
    """Overlaps the frame and stays within one frame size of it."""
    x1, y1, x2, y2 = box
    w, h = size
    return x1 < w and y1 < h and x2 > 0 and y2 > 0 and x1 >= -w and y1 >= -h and \
        x2 <= 2 * w and y2 <= 2 * h


def person_boxes(entry: Any, key: str, source: str = PERSON) -> tuple[tuple[tuple[float, ...], ...], tuple[int, int]]:
    """The person boxes (k, 4) xyxy of a ``person_bbox.pkl`` entry and its frame size."""
    if not isinstance(entry, dict) or "bbox" not in entry:
        raise fail(source, key, f"entry must be a dict with a 'bbox' field, got {_show(entry)}")
    size = frame_size(entry, key, source)
    raw = entry["bbox"]
    if isinstance(raw, str | bytes | dict):
        raise fail(source, key, f"bbox must be a (k, 4) array of numbers, got {_show(raw)}")
    try:
        bbox = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise fail(source, key, f"bbox must be a (k, 4) array of numbers, got {_show(raw)}"
                   ) from None
    if bbox.ndim != 2 or bbox.shape[1] != 4:
        raise fail(source, key, f"bbox should be a (k, 4) array, got shape {bbox.shape}")
    boxes = tuple(tuple(float(v) for v in row) for row in bbox)
    for box in boxes:
        if not all(math.isfinite(v) for v in box):
            raise fail(source, key, f"person box {box} is not finite (inf or nan)")
        if not _inside(box, size):
            raise fail(source, key, f"person box {box} lies far outside the "
                                    f"{size[0]}x{size[1]} frame")
    return boxes, size


def frame_objects(value: Any, key: str, source: str = OBJECTS) -> list[dict]:
    """A frame's object list: non-empty, dicts with a bool ``visible`` and the first one's
    ``metadata.set`` a split name (STTran reads the split from it)."""
    if not isinstance(value, list | tuple):
        raise fail(source, key, f"objects must be a list of dicts, got {_show(value)}")
    if not value:
        raise fail(source, key, "no objects for this frame")
    for obj in value:
        if not isinstance(obj, dict):
            raise fail(source, key, f"object entry must be a dict, got {_show(obj)}")
        if not isinstance(obj.get("visible"), bool | np.bool_):
            raise fail(source, key, f"'visible' must be true or false, got "
                                     f"{_show(obj.get('visible'))}")
        if not isinstance(obj.get("metadata"), dict):
            raise fail(source, key, f"metadata must be a dict with 'set', got "
                                     f"{_show(obj.get('metadata'))}")
    split = value[0]["metadata"].get("set")
    if split not in ("train", "test"):
        raise fail(source, key, f"metadata.set is {_show(split)}, expected 'train' or 'test'")
    return list(value)


def object_box(obj: dict, key: str, size: tuple[int, int], source: str = OBJECTS) -> tuple[float, float, float, float]:
    """A visible object's (x, y, w, h) as xyxy: four finite numbers overlapping the frame."""
    box = obj.get("bbox")
    if (not isinstance(box, tuple | list | np.ndarray) or len(box) != 4
            or not all(_finite(v) for v in box)):
        raise fail(source, key, f"visible object {_show(obj.get('class'))} needs an (x, y, w, "
                                 f"h) bbox of four finite numbers, got {_show(box)}")
    x, y, w, h = (float(v) for v in box)
    xyxy = (x, y, x + w, y + h)
    if not _inside(xyxy, size):
        raise fail(source, key, f"box (x, y, w, h) = {(x, y, w, h)} of "
                                 f"{obj['class']!r} lies far outside the {size[0]}x{size[1]} frame")
    return xyxy


def object_class(obj: dict, key: str, source: str = OBJECTS) -> str:
    name = obj.get("class")
    if not isinstance(name, str) or name not in vocab.OBJECT_CLASSES[1:]:
        raise fail(source, key, f"unknown object class {_show(name)}")
    return name


def labels(obj: dict, kind: str, key: str, source: str = OBJECTS) -> tuple[int, ...]:
    """Kind-local predicate ids of a visible object's ``<kind>_relationship`` list."""
    names = obj.get(f"{kind}_relationship")
    if not isinstance(names, list | tuple):
        raise fail(source, key, f"visible object {obj['class']!r} has no "
                                 f"{kind}_relationship list, got {_show(names)}")
    table = vocab.KINDS[kind]
    unknown = [n for n in names if not isinstance(n, str) or n not in table]
    if unknown:
        raise fail(source, key, f"unknown {kind} predicate {_show(unknown[0])} of "
                                 f"{obj['class']!r}")
    return tuple(table.index(n) for n in names)
