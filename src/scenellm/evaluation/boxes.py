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


def iou_planes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of coordinate-first box arrays ``a``, ``b`` (4, ...) = x1, y1, x2, y2 planes
    (broadcast); contiguous planes make this the fast layout."""
    iw = np.minimum(a[2], b[2]) - np.maximum(a[0], b[0]) + 1
    ih = np.minimum(a[3], b[3]) - np.maximum(a[1], b[1]) + 1
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    overlap = (iw > 0) & (ih > 0)
    return np.divide(inter, union, out=np.zeros(overlap.shape), where=overlap)


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row ``i`` of ``a`` (M, 4) with row ``i`` of ``b`` (M, 4): (M,) float64."""
    return iou_planes(np.asarray(a, dtype=np.float64).T, np.asarray(b, dtype=np.float64).T)


def bbox_overlaps(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    """IoU of every box (N, 4) with every query box (K, 4): (N, K) float64."""
    boxes = np.asarray(boxes, dtype=np.float64).T[:, :, None]  # (4, N, 1)
    query_boxes = np.asarray(query_boxes, dtype=np.float64).T[:, None, :]  # (4, 1, K)
    return iou_planes(boxes, query_boxes)
