"""Object sprites: a class-specific silhouette filled with a class-specific texture.

``sprite(kind, w, h, period)`` returns ``(rgb, mask)``: an (h, w, 3) uint8 image and an
(h, w) bool mask. The texture is the class colour with the accent colour laid out as the
class pattern (stripes, dots, checker, grid, diagonal bands, a screen, door panels) with a
period of ``period`` pixels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from scenellm.data.synth.catalogue import ObjectKind


def _silhouette(shape: str, w: int, h: int) -> np.ndarray:
    """(h, w) bool mask of a class silhouette drawn to fill a w×h box."""
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    X, Y = w - 1, h - 1

    def box(a: float, b: float, c: float, e: float) -> None:  # fractions of the box
        d.rectangle((round(a * X), round(b * Y), round(c * X), round(e * Y)), fill=255)

    if shape == "ellipse":
        d.ellipse((0, 0, X, Y), fill=255)
    elif shape == "rounded":
        d.rounded_rectangle((0, 0, X, Y), radius=max(1, min(w, h) // 4), fill=255)
    elif shape == "triangle":
        d.polygon([(0, Y), (X, Y), (X * 0.15, 0)], fill=255)
    elif shape == "bottle":
        box(0.0, 0.35, 1.0, 1.0)
        box(0.3, 0.0, 0.7, 0.4)
    elif shape == "laptop":
        box(0.12, 0.0, 0.88, 0.7)
        d.polygon([(0, Y), (X, Y), (X * 0.88, Y * 0.72), (X * 0.12, Y * 0.72)], fill=255)
    elif shape == "bag":
        d.rounded_rectangle((0, round(0.3 * Y), X, Y), radius=max(1, w // 6), fill=255)
        d.arc(
            (round(0.25 * X), 0, round(0.75 * X), round(0.6 * Y)),
            180,
            360,
            fill=255,
            width=max(1, w // 8),
        )
    elif shape == "tshirt":
        d.polygon(
            [
                (0.3 * X, 0),
                (0.7 * X, 0),
                (X, 0.25 * Y),
                (0.8 * X, 0.4 * Y),
                (0.8 * X, Y),
                (0.2 * X, Y),
                (0.2 * X, 0.4 * Y),
                (0, 0.25 * Y),
            ],
            fill=255,
        )
    elif shape == "boot":
        d.polygon(
            [(0, 0), (0.45 * X, 0), (0.5 * X, 0.45 * Y), (X, 0.6 * Y), (X, Y), (0, Y)], fill=255
        )
    elif shape == "chair":
        box(0.0, 0.0, 0.25, 0.55)
        box(0.0, 0.42, 1.0, 0.56)
        box(0.02, 0.5, 0.14, 1.0)
        box(0.86, 0.5, 0.98, 1.0)
    elif shape == "sofa":
        box(0.05, 0.0, 0.95, 0.55)
        box(0.0, 0.3, 0.13, 0.92)
        box(0.87, 0.3, 1.0, 0.92)
        box(0.0, 0.5, 1.0, 0.92)
        box(0.04, 0.9, 0.1, 1.0)
        box(0.9, 0.9, 0.96, 1.0)
    elif shape == "bed":
        box(0.0, 0.0, 0.1, 1.0)
        box(0.0, 0.35, 1.0, 0.85)
        box(0.92, 0.6, 0.98, 1.0)
    elif shape == "table":
        box(0.0, 0.0, 1.0, 0.18)
        box(0.06, 0.1, 0.14, 1.0)
        box(0.86, 0.1, 0.94, 1.0)
    else:  # rect
        d.rectangle((0, 0, X, Y), fill=255)
    return np.asarray(img) > 0


def _pattern(pattern: str, w: int, h: int, p: int) -> np.ndarray:
    """(h, w) bool: where the accent colour goes."""
    yy, xx = np.mgrid[0:h, 0:w]
    if pattern == "stripes_h":
        return (yy // p) % 2 == 1
    if pattern == "stripes_v":
        return (xx // p) % 2 == 1
    if pattern == "dots":
        return (xx % (2 * p) - p) ** 2 + (yy % (2 * p) - p) ** 2 <= (0.6 * p) ** 2
    if pattern == "checker":
        return (xx // p + yy // p) % 2 == 1
    if pattern == "grid":
        return (xx % (2 * p) == 0) | (yy % (2 * p) == 0)
    if pattern == "diag":
        return ((xx + yy) // p) % 2 == 1
    if pattern == "screen":  # a lit screen inside a bezel
        bx, by = max(1, w // 7), max(1, h // 7)
        return (xx >= bx) & (xx < w - bx) & (yy >= by) & (yy < h - 2 * by)
    if pattern == "panels":  # two recessed door panels and a knob
        bx = max(1, w // 6)
        frame = (
            (xx == bx)
            | (xx == w - 1 - bx)
            | (yy == h // 8)
            | (yy == h // 2)
            | (yy == h - 1 - h // 8)
        )
        knob = (xx - 0.82 * w) ** 2 + (yy - 0.55 * h) ** 2 <= max(1.0, 0.06 * w) ** 2
        return frame | knob
    return np.zeros((h, w), dtype=bool)


@lru_cache(maxsize=512)
def sprite(kind: ObjectKind, w: int, h: int, period: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, 3) uint8 texture and (h, w) bool silhouette of a class at this size."""
    w, h = max(w, 2), max(h, 2)
    mask = _silhouette(kind.shape, w, h)
    accent = _pattern(kind.pattern, w, h, max(2, period))
    rgb = np.where(
        accent[..., None], np.array(kind.accent, np.uint8), np.array(kind.colour, np.uint8)
    )  # (h, w, 3)
    rgb.flags.writeable = False
    mask.flags.writeable = False
    return rgb, mask
