"""Render world states to RGB frames with Pillow.

A frame is the video's room background (wall, skirting, floor planks, fixed mild texture
noise), then the objects and the person drawn back to front by layer, then fresh sensor
noise. The person is a figure (legs, torso, one arm stretched to the hand when it reaches
or holds, head) whose head shows where they look: hair on the back of the head, an eye
and a nose on the side they face, and a short red gaze line along the gaze ray; facing
the camera it shows two eyes and a mouth instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from scenellm.data.synth.catalogue import ObjectKind
from scenellm.data.synth.scene import HORIZON, PERSON
from scenellm.data.synth.sprites import sprite
from scenellm.data.synth.world import FrameState

RGB = tuple[int, int, int]
WALLS: tuple[RGB, ...] = ((214, 206, 190), (196, 208, 214), (210, 214, 196), (220, 200, 200))
FLOORS: tuple[RGB, ...] = ((150, 128, 104), (128, 128, 132), (160, 146, 120))
SHIRTS: tuple[RGB, ...] = ((105, 110, 125), (80, 100, 135), (135, 100, 100), (90, 120, 100))
SKIN, HAIR, TROUSERS, GAZE = (232, 190, 158), (45, 32, 25), (50, 52, 72), (200, 20, 20)
NOISE = 3.0  # sensor noise, grey levels (std)


@dataclass(frozen=True)
class VideoLook:
    background: np.ndarray  # (H, W, 3) uint8
    shirt: RGB


def video_look(rng: np.random.Generator, size: tuple[int, int]) -> VideoLook:
    """A room background and a shirt colour for one video."""
    W, H = size
    wall = np.array(WALLS[rng.integers(len(WALLS))], np.float32)
    floor = np.array(FLOORS[rng.integers(len(FLOORS))], np.float32)
    y = np.arange(H)[:, None, None]  # (H, 1, 1)
    horizon = round(HORIZON * H)
    img = np.where(y < horizon, wall, floor) * np.ones((1, W, 1), np.float32)  # (H, W, 3)
    planks = (y >= horizon) & ((y - horizon) % max(3, H // 12) == 0)
    img = np.where(planks, img * 0.85, img)
    img[max(horizon - 2, 0) : horizon] = 245  # skirting board
    img += rng.normal(0.0, 4.0, img.shape)
    shirt = SHIRTS[rng.integers(len(SHIRTS))]
    return VideoLook(np.clip(img, 0, 255).astype(np.uint8), shirt)


def _paste(frame: np.ndarray, kind: ObjectKind, box, period: int) -> None:
    """Composite a class sprite into ``frame`` (H, W, 3) at an unclipped box, in place."""
    x0, y0 = round(box[0]), round(box[1])
    w, h = max(2, round(box[2]) - x0), max(2, round(box[3]) - y0)
    rgb, mask = sprite(kind, w, h, period)
    H, W = frame.shape[:2]
    a0, b0, a1, b1 = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    if a1 <= a0 or b1 <= b0:
        return
    sub_m = mask[b0 - y0 : b1 - y0, a0 - x0 : a1 - x0]
    frame[b0:b1, a0:a1][sub_m] = rgb[b0 - y0 : b1 - y0, a0 - x0 : a1 - x0][sub_m]


def draw_person(img: Image.Image, state: FrameState, shirt: RGB) -> None:
    """Draw the figure, its arm to the hand, and its head with the gaze cues."""
    d = ImageDraw.Draw(img)
    fig, H = state.figure, img.height
    lw = max(2, round(0.035 * H))
    for leg in fig.legs:
        d.line(leg, fill=TROUSERS, width=lw)
    d.rectangle(fig.torso, fill=shirt)
    if state.arm:
        d.line((fig.shoulder, state.hand), fill=tuple(int(c * 0.8) for c in shirt), width=lw)
        d.ellipse(
            (
                state.hand[0] - lw / 2,
                state.hand[1] - lw / 2,
                state.hand[0] + lw / 2,
                state.hand[1] + lw / 2,
            ),
            fill=SKIN,
        )
    hx, hy, r = fig.head
    d.ellipse((hx - r, hy - r, hx + r, hy + r), fill=SKIN)
    f, eye_r = fig.facing, max(1.0, 0.15 * r)
    if f == 0:
        d.chord((hx - r, hy - r, hx + r, hy + r), 180, 360, fill=HAIR)
        for ex in (hx - 0.35 * r, hx + 0.35 * r):
            d.ellipse(
                (ex - eye_r, hy + 0.1 * r - eye_r, ex + eye_r, hy + 0.1 * r + eye_r), fill=HAIR
            )
        d.line(((hx - 0.3 * r, hy + 0.55 * r), (hx + 0.3 * r, hy + 0.55 * r)), fill=GAZE)
        return
    start = 150 if f > 0 else 250
    d.pieslice((hx - r, hy - r, hx + r, hy + r), start, start + 140, fill=HAIR)
    ex, ey = hx + f * 0.45 * r, hy - 0.1 * r
    d.ellipse((ex - eye_r, ey - eye_r, ex + eye_r, ey + eye_r), fill=HAIR)
    d.polygon(
        [
            (hx + f * 0.9 * r, hy - 0.1 * r),
            (hx + f * 1.35 * r, hy + 0.25 * r),
            (hx + f * 0.9 * r, hy + 0.35 * r),
        ],
        fill=SKIN,
    )
    if state.gaze is not None:
        gx, gy = state.gaze
        d.line(((ex, ey), (ex + gx * 1.6 * r, ey + gy * 1.6 * r)), fill=GAZE, width=1)


def render(
    state: FrameState, kinds: list[ObjectKind], look: VideoLook, rng: np.random.Generator
) -> Image.Image:
    """One RGB frame: background, objects and person back to front, sensor noise."""
    frame = look.background.copy()  # (H, W, 3)
    period = max(2, round(frame.shape[0] / 40))
    order = sorted(
        range(len(kinds)), key=lambda i: (state.objects[i].layer, state.objects[i].rank, i)
    )
    person_drawn = False
    for i in order:
        o = state.objects[i]
        if not person_drawn and (o.layer, o.rank) >= (PERSON, 0):
            frame = _with_person(frame, state, look.shirt)
            person_drawn = True
        _paste(frame, kinds[i], o.box, period)
    if not person_drawn:
        frame = _with_person(frame, state, look.shirt)
    noise = rng.standard_normal(frame.shape, dtype=np.float32) * NOISE  # (H, W, 3)
    return Image.fromarray(np.clip(frame + np.rint(noise), 0, 255).astype(np.uint8), "RGB")


def _with_person(frame: np.ndarray, state: FrameState, shirt: RGB) -> np.ndarray:
    img = Image.fromarray(frame, "RGB")
    draw_person(img, state, shirt)
    return np.array(img)
