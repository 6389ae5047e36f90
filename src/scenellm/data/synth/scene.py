"""A room and its objects: which classes a video has and where they start.

Depth is a small set of layers, drawn back to front: ``BACK`` (against the wall: wall
items, furniture, objects on the back floor or on a table), ``BEHIND_BODY`` (a bag on the
back), ``PERSON`` (the person and what they wear), ``HAND`` (what they hold), ``FRONT``
(objects on the floor near the camera). Nearer layers stand lower in the image and are
drawn larger, as in a photo taken from standing height.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenellm.data.synth.catalogue import CATALOGUE, ObjectKind

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) pixels, unclipped

BACK, BEHIND_BODY, PERSON, HAND, FRONT = 0, 1, 2, 3, 4
HORIZON = 0.52  # wall/floor boundary, in image heights from the top
FLOOR = {BACK: 0.68, PERSON: 0.84, FRONT: 0.97}  # where feet / object bottoms stand
SCALE = {BACK: 0.85, FRONT: 1.1}
RANK = {"floor": -1, "wall": 0, "furniture": 1, "small": 2}  # draw order inside one layer
OTHER_CLASSES = (5, 6)  # classes besides the floor per room, inclusive
WORN_CLASSES, WORN_CHANCE = ("clothes", "shoe"), 0.75  # each in a room with this chance
WORN_AT_START = 0.8  # chance that clothes / shoes in the room are worn from the start


@dataclass
class Thing:
    """One object of a video: its class, fixed size, current box, layer and attachment."""

    kind: ObjectKind
    w: float
    h: float
    layer: int
    box: Box
    attach: str | None = None  # None | "hand" | "body" | "back"

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    @property
    def rank(self) -> int:
        return RANK[self.kind.place]

    def place(self, cx: float, bottom: float) -> None:
        self.box = (cx - self.w / 2, bottom - self.h, cx + self.w / 2, bottom)

    def centre_on(self, cx: float, cy: float) -> None:
        self.box = (cx - self.w / 2, cy - self.h / 2, cx + self.w / 2, cy + self.h / 2)


def choose_classes(rng: np.random.Generator) -> list[str]:
    """The floor and 5–6 other distinct classes (clothes and shoes each with chance 0.75);
    at most two pieces of furniture and one of sofa/bed."""
    n = int(rng.integers(OTHER_CLASSES[0], OTHER_CLASSES[1] + 1)) + 1
    names = sorted(c for c in CATALOGUE if c != "floor")
    chosen: list[str] = ["floor"]
    chosen += [c for c in WORN_CLASSES if rng.random() < WORN_CHANCE]
    for i in rng.permutation(len(names)):
        name = names[i]
        if name in chosen:
            continue
        furniture = [c for c in chosen if CATALOGUE[c].place == "furniture"]
        if CATALOGUE[name].place == "furniture" and len(furniture) >= 2:
            continue
        if name in ("sofa/couch", "bed") and {"sofa/couch", "bed"} & set(chosen):
            continue
        chosen.append(name)
        if len(chosen) == n:
            break
    return chosen


def _free_x(rng, w: float, width: float, taken: list[tuple[float, float]]) -> float:
    """A centre x whose span [x - w/2, x + w/2] avoids ``taken`` spans if it can."""
    for _ in range(20):
        x = float(rng.uniform(w / 2, max(w / 2 + 1, width - w / 2)))
        if all(x + w / 2 < a or x - w / 2 > b for a, b in taken):
            break
    taken.append((x - w / 2, x + w / 2))
    return x


def layout_scene(rng: np.random.Generator, width: int, height: int) -> list[Thing]:
    """Place the chosen objects: wall items, furniture on the back floor, small things."""
    names = choose_classes(rng)
    order = sorted(names, key=lambda n: RANK[CATALOGUE[n].place])  # big things first
    wall_spans: list[tuple[float, float]] = []
    floor_spans: list[tuple[float, float]] = []
    things: dict[str, Thing] = {}
    for name in order:
        kind = CATALOGUE[name]
        if kind.place == "floor":
            t = Thing(kind, float(width), (1 - HORIZON) * height, BACK, (0, 0, 0, 0))
            t.place(width / 2, float(height))
        elif kind.place == "wall":
            w, h = kind.size[0] * height, kind.size[1] * height
            t = Thing(kind, w, h, BACK, (0, 0, 0, 0))
            bottom = (
                (HORIZON + 0.04) * height
                if name == "door"
                else float(rng.uniform(0.30, 0.42)) * height
            )
            t.place(_free_x(rng, w, width, wall_spans), bottom)
        elif kind.place == "furniture":
            w, h = (s * height * SCALE[BACK] for s in kind.size)
            t = Thing(kind, w, h, BACK, (0, 0, 0, 0))
            t.place(_free_x(rng, w, width, floor_spans), FLOOR[BACK] * height)
        else:
            t = _place_small(rng, kind, width, height, things.get("table"))
        things[name] = t
    return [things[n] for n in names]


def _place_small(rng, kind: ObjectKind, width: int, height: int, table: Thing | None) -> Thing:
    if "wear" in kind.roles and rng.random() < WORN_AT_START:
        w, h = (s * height for s in kind.size)
        t = Thing(kind, w, h, PERSON, (0, 0, 0, 0), attach="body")  # worn from the start
        t.place(width / 2, FLOOR[PERSON] * height)  # the body moves it on the first frame
        return t
    if table is not None and rng.random() < 0.5:
        w, h = (s * height * SCALE[BACK] for s in kind.size)
        t = Thing(kind, w, h, BACK, (0, 0, 0, 0))
        lo, hi = table.box[0] + w / 2, table.box[2] - w / 2
        t.place(float(rng.uniform(lo, max(lo, hi))), table.box[1] + 0.01 * height)
        return t
    layer = BACK if rng.random() < 0.6 else FRONT
    w, h = (s * height * SCALE[layer] for s in kind.size)
    t = Thing(kind, w, h, layer, (0, 0, 0, 0))
    t.place(float(rng.uniform(0.03, 0.97)) * width, FLOOR[layer] * height)
    return t
