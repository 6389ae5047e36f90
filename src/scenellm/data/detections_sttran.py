"""Convert the detections STTran / DSG-DETR users get from their Faster R-CNN runs.

The source is a pickle of one dict per video (numpy arrays, no tensors)::

    {video_id: {
        "frame_names": [frame keys "VID.mp4/FRAME.png", in frame order],
        "boxes": (N, 5) [im_idx, x1, y1, x2, y2]  # im_idx indexes frame_names
        "labels": (N,) STTran class ids (0 background, 1 person, 2..36 objects),
        "scores": (N,) in [0, 1],
    }}

It is untrusted input, read only through the restricted Action Genome unpickler
(:func:`scenellm.data.unpickle.load_pickle`), which refuses torch tensors and any other
global (save ``tensor.numpy()``). Every frame of ``frame_names`` becomes a frame of the
result, with no detections when no row points at it; rows keep their order within a frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scenellm.data.detections import Detections
from scenellm.data.unpickle import load_pickle
from scenellm.errors import DataError

FIELDS = ("frame_names", "boxes", "labels", "scores")


def _array(source: str, video: str, name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a real array of ``shape`` (-1: any length); a one-line error otherwise."""
    array = np.asarray(value) if isinstance(value, np.ndarray | list | tuple) else None
    if array is None or array.dtype.kind not in "biuf":
        raise DataError(f"{source}: video {video!r} field {name!r} is not a numeric array "
                        f"(got {type(value).__name__}); save numpy arrays, not tensors.")
    if array.size == 0:
        array = array.reshape([0 if s == -1 else s for s in shape])
    if array.ndim != len(shape) or any(s not in (-1, a) for s, a in zip(shape, array.shape,
                                                                         strict=True)):
        wanted = "(N, 5) [im_idx, x1, y1, x2, y2]" if name == "boxes" else "(N,)"
        raise DataError(f"{source}: video {video!r} field {name!r} has shape {array.shape}, "
                        f"expected {wanted}.")
    return array


def _video(source: str, video: str, entry) -> tuple[list[str], np.ndarray, np.ndarray,
                                                    np.ndarray, np.ndarray]:
    """One video's frame keys, counts, boxes, labels and scores, rows grouped by frame."""
    if not isinstance(entry, dict) or any(f not in entry for f in FIELDS):
        raise DataError(f"{source}: video {video!r} must be a dict with "
                        f"{', '.join(map(repr, FIELDS))} (see docs/detections.md).")
    names = entry["frame_names"]
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{source}: video {video!r} field 'frame_names' must be a list of "
                        "frame keys 'VID.mp4/FRAME.png'.")
    boxes = _array(source, video, "boxes", entry["boxes"], (-1, 5)).astype(np.float64)
    n = len(boxes)
    labels = _array(source, video, "labels", entry["labels"], (n,))
    scores = _array(source, video, "scores", entry["scores"], (n,))
    im_idx = boxes[:, 0]
    bad = np.flatnonzero((im_idx != np.round(im_idx)) | (im_idx < 0) | (im_idx >= len(names)))
    if len(bad):
        raise DataError(f"{source}: video {video!r} row {bad[0]} has im_idx {im_idx[bad[0]]}, "
                        f"not a frame index 0..{len(names) - 1} of its frame_names.")
    bad = np.flatnonzero(labels != np.round(labels))
    if len(bad):
        raise DataError(f"{source}: video {video!r} row {bad[0]} has label {labels[bad[0]]}, "
                        "not an integer STTran class id.")
    frame = im_idx.astype(np.int64)
    order = np.argsort(frame, kind="stable")
    return (list(names), np.bincount(frame, minlength=len(names)), boxes[order, 1:],
            labels.astype(np.int64)[order], scores.astype(np.float64)[order])


def convert_sttran(src: str | Path) -> Detections:
    """Read an STTran-layout detections pickle (format: the module docstring) into validated
    :class:`Detections`, frames in video then ``frame_names`` order."""
    src = Path(src)
    content = load_pickle(src)
    if not isinstance(content, dict):
        raise DataError(f"{src}: must hold a dict {{video_id: {{{', '.join(FIELDS)}}}}}, "
                        f"got a {type(content).__name__}.")
    parts = [_video(str(src), str(video), entry) for video, entry in content.items()]
    keys = [k for p in parts for k in p[0]]
    flat = [np.concatenate([np.zeros((0, 4)) if i == 2 else np.zeros(0), *(p[i] for p in parts)])
            for i in range(1, 5)]
    counts, boxes, labels, scores = flat
    return Detections.from_flat(keys, counts.astype(np.int64), boxes, labels.astype(np.int64),
                                scores, source=str(src))
