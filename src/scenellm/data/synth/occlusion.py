"""How much of each box is in the image, and how much of that lies under nearer boxes."""

from __future__ import annotations

import numpy as np

from scenellm.data.synth.scene import Box


def _pixels(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer pixel span of a box, clipped to the image (may be empty)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def in_frame(box: Box, width: int, height: int) -> float:
    """Share of the box's area inside the image."""
    area = max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)
    w = max(0.0, min(box[2], width) - max(box[0], 0.0))
    h = max(0.0, min(box[3], height) - max(box[1], 0.0))
    return w * h / area


def coverage(boxes: list[Box], occluders: list[list[int]], width: int, height: int) -> list[float]:
    """Share of each box's in-image pixels covered by the union of its occluders' boxes.

    ``occluders[k]`` lists the indices of boxes drawn over box ``k``. A box with no pixel
    in the image counts as fully covered.
    """
    out = []
    for k, box in enumerate(boxes):
        x0, y0, x1, y1 = _pixels(box, width, height)
        if x1 <= x0 or y1 <= y0:
            out.append(1.0)
            continue
        covered = np.zeros((y1 - y0, x1 - x0), dtype=bool)  # (h, w) pixels of box k
        for j in occluders[k]:
            a0, b0, a1, b1 = _pixels(boxes[j], width, height)
            covered[max(b0 - y0, 0) : max(b1 - y0, 0), max(a0 - x0, 0) : max(a1 - x0, 0)] = True
        out.append(float(covered.mean()))
    return out
