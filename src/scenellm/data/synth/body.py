"""The person's body: a stick figure (head, torso, legs, one arm) in four poses.

All lengths are fractions of the image height ``H``. The figure faces ``facing`` = -1
(left), +1 (right) or 0 (the camera). Poses: ``stand`` (feet on the person's floor line,
legs apart while walking), ``sit`` (hips on a seat's sitting surface, thighs forward),
``lie`` (body horizontal on a seat, head on the facing side), ``closeup`` (right in front
of the lens, covering the whole frame).
"""

from __future__ import annotations

from dataclasses import dataclass

from scenellm.data.synth.scene import FLOOR, PERSON, Box

Point = tuple[float, float]
HEAD_R, TORSO_W, TORSO_H, LEG, THIGH = 0.07, 0.12, 0.22, 0.24, 0.12


@dataclass(frozen=True)
class Figure:
    pose: str
    facing: int
    head: tuple[float, float, float]  # (cx, cy, r)
    torso: Box
    legs: tuple[tuple[Point, ...], ...]  # polylines from the hip
    shoulder: Point
    rest: Point  # where the hand hangs when it does nothing

    @property
    def hip_y(self) -> float:
        return self.legs[0][0][1]

    @property
    def feet(self) -> Point:
        return self.legs[0][-1]


def figure(
    x: float,
    pose: str,
    facing: int,
    size: tuple[int, int],
    seat: Box | None = None,
    seat_top: float = 0.0,
    moving: bool = False,
) -> Figure:
    """Pose the body with its centre line at ``x`` (on ``seat`` when sitting or lying)."""
    width, H = size
    r, tw, th = HEAD_R * H, TORSO_W * H, TORSO_H * H
    f = facing
    if pose == "closeup":
        torso = (-0.1 * width, 0.42 * H, 1.1 * width, 1.3 * H)
        head = (width / 2, 0.25 * H, 0.2 * H)
        legs = (((width / 2, 1.3 * H), (width / 2, 1.3 * H)),)
        return Figure(pose, f, head, torso, legs, (width / 2, 0.5 * H), (width / 2, 1.2 * H))
    if pose == "lie":
        d = f if f else 1
        y = seat_top - tw / 2
        hip = x - d * (th + 1.9 * r - LEG * H) / 2
        torso = (min(hip, hip + d * th), y - tw / 2, max(hip, hip + d * th), y + tw / 2)
        head = (hip + d * (th + 0.9 * r), y, r)
        legs = (((hip, y), (hip - d * LEG * H, y)),)
        shoulder = (hip + d * 0.85 * th, y)
        return Figure(pose, f, head, torso, legs, shoulder, (hip + d * 0.5 * th, y - 0.5 * tw))
    if pose == "sit":
        hip_y, feet_y = seat_top, seat[3]
        thigh = THIGH * H * (f if f else 0.3)
        legs = (((x, hip_y), (x + thigh, hip_y), (x + thigh, feet_y)),)
        rest = (x + 0.6 * thigh, hip_y - 0.02 * H)
    else:
        feet_y = FLOOR[PERSON] * H
        hip_y = feet_y - LEG * H
        spread = 0.05 * H if moving else 0.015 * H
        legs = (((x, hip_y), (x - spread, feet_y)), ((x, hip_y), (x + spread, feet_y)))
        rest = (x + (f if f else 1) * (tw / 2 + 0.01 * H), hip_y + 0.02 * H)
    torso = (x - tw / 2, hip_y - th, x + tw / 2, hip_y)
    head = (x, torso[1] - 0.9 * r, r)
    shoulder = (x + (0.3 * f if f else 0.45) * tw, torso[1] + 0.12 * th)
    return Figure(pose, f, head, torso, legs, shoulder, rest)


def anchor(fig: Figure, where: str, H: float) -> Point:
    """Where the hand is for a named hold: ``chest``, ``head`` (mouth) or ``side``."""
    f = fig.facing
    x0, y0, x1, y1 = fig.torso
    cx = (x0 + x1) / 2
    hx, hy, r = fig.head
    if where == "head":
        return (hx + f * r, hy + 0.3 * r) if f else (hx, hy + 0.9 * r)
    if where == "side":
        return (cx + (f if f else 1) * ((x1 - x0) / 2 + 0.03 * H), fig.hip_y)
    if fig.pose == "lie":
        return fig.rest
    return (cx + f * ((x1 - x0) / 2 + 0.05 * H), y0 + 0.45 * (y1 - y0))


def worn_box(fig: Figure, role: str, w: float, h: float, H: float) -> Box:
    """Where worn things sit: clothes on the torso, a blanket wrapped around, shoes on feet."""
    x0, y0, x1, y1 = fig.torso
    if role == "shoe":
        fx, fy = fig.feet
        return (fx - w / 2, fy - h, fx + w / 2, fy)
    if role == "cover":
        xs = [p[0] for leg in fig.legs for p in leg] + [x0, x1]
        ys = [p[1] for leg in fig.legs for p in leg] + [y1]
        top = (y0 + y1) / 2 if fig.pose != "lie" else y0
        return (min(xs) - 0.02 * H, top, max(xs) + 0.02 * H, max(ys) + 0.01 * H)
    return (x0 - 0.01 * H, y0 - 0.01 * H, x1 + 0.01 * H, y1 + 0.01 * H)


def back_point(fig: Figure) -> Point:
    """Where a bag on the back hangs: behind the torso, on the side away from the gaze."""
    x0, y0, x1, y1 = fig.torso
    f = fig.facing if fig.facing else -1
    return ((x0 + x1) / 2 - f * 0.55 * (x1 - x0), (y0 + y1) / 2)


def person_box(fig: Figure, hand: Point) -> Box:
    """Tight box around head, torso, legs and the hand (the arm is drawn to it)."""
    hx, hy, r = fig.head
    xs = [hx - r, hx + r, fig.torso[0], fig.torso[2], hand[0]]
    ys = [hy - r, hy + r, fig.torso[1], fig.torso[3], hand[1]]
    xs += [p[0] for leg in fig.legs for p in leg]
    ys += [p[1] for leg in fig.legs for p in leg]
    return min(xs), min(ys), max(xs), max(ys)
