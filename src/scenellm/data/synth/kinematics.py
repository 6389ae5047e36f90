"""How things move and touch: drops, grips, hold points, contact kinds and gaze.

Lengths are pixels; ``H`` is the image height. Rules are listed in
:mod:`scenellm.data.synth.world`.
"""

from __future__ import annotations

import math

from scenellm.data.synth.body import Figure, anchor
from scenellm.data.synth.plan import Intent
from scenellm.data.synth.scene import BACK, FLOOR, Thing

Point = tuple[float, float]


def drop(t: Thing, things: list[Thing], H: float) -> None:
    """Let go: land on the table top the object is over, else on the back floor."""
    cx = t.centre[0]
    for s in things:
        if (
            "surface" in s.kind.roles
            and s.box[0] <= cx <= s.box[2]
            and t.box[3] <= s.box[1] + 0.05 * H
        ):
            t.place(cx, s.box[1] + 0.01 * H)
            break
    else:
        t.place(cx, FLOOR[BACK] * H)
    t.attach, t.layer = None, BACK


def grip(t: Thing, fig: Figure, H: float) -> Point:
    """Where a hand touches a thing it reaches for."""
    x0, y0, x1, y1 = t.box
    sx = min(max(fig.shoulder[0], x0 + 2), x1 - 2)
    if "twist" in t.kind.roles:  # the knob, on the side nearer the person
        return (x0 + (0.8 if fig.shoulder[0] > (x0 + x1) / 2 else 0.2) * t.w, y0 + 0.55 * t.h)
    if t.kind.place == "furniture":
        return sx, y0 + (0.02 * H if "surface" in t.kind.roles else 0.1 * t.h)
    return t.centre


def hold_point(it: Intent, t: Thing, things: list[Thing], fig: Figure, H: float) -> Point:
    """Where the hand (and the held object's centre) is for the intent's ``hand_at``."""
    if it.hand_at == "reach":
        return t.centre
    if it.hand_at in ("table", "wipe_l", "wipe_r") and it.surface is not None:
        s = things[it.surface]
        shift = {"table": 0.0, "wipe_l": -0.04 * H, "wipe_r": 0.04 * H}[it.hand_at]
        x = fig.shoulder[0] + fig.facing * 0.1 * H + shift
        x = min(max(x, s.box[0] + t.w / 2), s.box[2] - t.w / 2)
        return x, s.box[1] - t.h / 2
    return anchor(fig, it.hand_at if it.hand_at in ("head", "side") else "chest", H)


def contact_kind(i: int, t: Thing, it: Intent) -> str | None:
    """How the person touches thing ``i``: hand, seat, worn, back, feet (the floor under a
    standing or seated person), or not at all (None)."""
    if t.attach is not None:
        return {"body": "worn", "back": "back", "hand": "hand"}[t.attach]
    if it.pose == "closeup":
        return None
    if "stand" in t.kind.roles:
        return "feet" if it.pose in ("stand", "sit") else None
    if it.hand == i and it.hand_at == "reach":
        return "hand"
    if it.seat == i and it.pose in ("sit", "lie"):
        return "seat"
    return None


def gaze(it: Intent, fig: Figure, things: list[Thing]) -> Point | None:
    """Unit gaze ray: to the attended object if it is on the side faced, else ahead and a
    little down; None when facing the camera."""
    if it.facing == 0 or it.pose == "closeup":
        return None
    hx, hy, r = fig.head
    gx, gy = float(it.facing), 0.3
    if it.look is not None:
        tx, ty = things[it.look].centre
        if (tx - hx) * it.facing > -r:
            gx, gy = tx - hx, ty - hy
    n = math.hypot(gx, gy) or 1.0
    return gx / n, gy / n
