"""Box IoU with the +1-pixel convention of Fast R-CNN / STTran's ``bbox_overlaps``.

Boxes are ``[x1, y1, x2, y2]`` with inclusive pixel coordinates, so a box covers
``(x2 - x1 + 1) * (y2 - y1 + 1)`` pixels and two boxes overlap on
``iw = min(x2, x2') - max(x1, x1') + 1`` columns (likewise ``ih`` rows):

    IoU = iw * ih / (area + area' - iw * ih)   if iw > 0 and ih > 0, else 0

The float64 operations are the Cython loop's, in its order, so a threshold test such as
``IoU >= 0.5`` decides exactly as STTran does.
"""

from __future__ import annotations

import numpy as np


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0] + 1) * (boxes[..., 3] - boxes[..., 1] + 1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcast box arrays ``a`` (..., 4) and ``b`` (..., 4)."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    inter = iw * ih
    union = _area(a) + _area(b) - inter
    overlap = (iw > 0) & (ih > 0)
    return np.divide(inter, union, out=np.zeros(overlap.shape), where=overlap)


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row ``i`` of ``a`` (M, 4) with row ``i`` of ``b`` (M, 4): (M,) float64."""
    return _iou(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def bbox_overlaps(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    """IoU of every box (N, 4) with every query box (K, 4): (N, K) float64."""
    boxes = np.asarray(boxes, dtype=np.float64)
    query_boxes = np.asarray(query_boxes, dtype=np.float64)
    return _iou(boxes[:, None, :], query_boxes[None, :, :])
