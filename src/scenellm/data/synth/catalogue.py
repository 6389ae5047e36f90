"""The Action Genome classes the synthetic world uses, with their look and affordances.

Each class has its own silhouette (``shape``), body colour, accent colour and texture
(``pattern``), so that a detector can tell classes apart from pixels alone. ``roles`` are
the affordances the world rules read (see :mod:`scenellm.data.synth.world`):

- ``grasp``: can be picked up and then follows the hand;
- ``drink`` / ``eat``: held at the head gives ``drinking_from`` / ``eating``;
- ``write`` / ``wipe``: held over a table gives ``writing_on`` / (moving) ``wiping``;
- ``back``: carried long enough, it is slung onto the back (``have_it_on_the_back``);
- ``wear`` / ``cover``: put on the body (``wearing`` / ``covered_by``);
- ``sit`` / ``lie``: the person can settle on it (``sitting_on`` / ``lying_on``);
- ``surface``: other objects stand on it and are used over it; a hand resting on it
  long enough is ``leaning_on``; ``twist``: a hand kept on it is ``twisting`` (door knob);
- ``watch``: hung on the wall, looked at from afar;
- ``stand``: the floor, under the person's feet (``standing_on``; ``touching`` when seated).

Sizes are (width, height) in image heights for an object at the person's depth.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ObjectKind:
    name: str  # class name as written in the AG pickles (vocab.OBJECT_CLASSES)
    size: tuple[float, float]
    place: str  # "floor" | "wall" | "furniture" | "small"
    shape: str
    colour: RGB
    accent: RGB
    pattern: str
    roles: frozenset[str]


def _kind(name, size, place, shape, colour, accent, pattern, *roles) -> ObjectKind:
    return ObjectKind(name, size, place, shape, colour, accent, pattern, frozenset(roles))


# fmt: off
_TABLE = (
    # name, size, place, shape, colour, accent, pattern, roles...
    ("cup/glass/bottle", (0.07, 0.11), "small", "bottle", (60, 140, 235), (235, 245, 255), "stripes_h", "grasp", "drink"),
    ("food", (0.10, 0.07), "small", "ellipse", (245, 140, 25), (170, 50, 20), "dots", "grasp", "eat"),
    ("sandwich", (0.11, 0.08), "small", "triangle", (230, 205, 130), (70, 170, 50), "stripes_h", "grasp", "eat"),
    ("book", (0.09, 0.11), "small", "rect", (165, 25, 40), (245, 225, 185), "stripes_v", "grasp"),
    ("paper/notebook", (0.09, 0.11), "small", "rect", (248, 248, 240), (70, 100, 210), "grid", "grasp", "write"),
    ("phone/camera", (0.05, 0.09), "small", "rounded", (25, 25, 30), (80, 210, 230), "screen", "grasp"),
    ("laptop", (0.16, 0.11), "small", "laptop", (175, 175, 185), (30, 50, 120), "screen", "grasp"),
    ("bag", (0.12, 0.13), "small", "bag", (125, 70, 25), (215, 165, 85), "checker", "grasp", "back"),
    ("box", (0.14, 0.12), "small", "rect", (205, 160, 95), (110, 80, 40), "diag", "grasp"),
    ("towel", (0.10, 0.13), "small", "rect", (245, 110, 185), (255, 255, 255), "stripes_h", "grasp", "wipe"),
    ("pillow", (0.14, 0.09), "small", "rounded", (165, 135, 225), (245, 235, 255), "dots", "grasp"),
    ("blanket", (0.22, 0.12), "small", "rect", (35, 135, 65), (210, 40, 40), "checker", "grasp", "cover"),
    ("clothes", (0.14, 0.14), "small", "tshirt", (245, 220, 35), (35, 35, 165), "stripes_v", "grasp", "wear"),
    ("shoe", (0.09, 0.05), "small", "boot", (85, 45, 25), (235, 235, 235), "dots", "grasp", "wear"),
    ("chair", (0.18, 0.30), "furniture", "chair", (155, 95, 40), (95, 50, 15), "stripes_v", "sit"),
    ("sofa/couch", (0.50, 0.26), "furniture", "sofa", (25, 130, 140), (15, 85, 95), "checker", "sit", "lie"),
    ("bed", (0.55, 0.22), "furniture", "bed", (225, 232, 250), (55, 85, 170), "stripes_h", "sit", "lie"),
    ("table", (0.34, 0.20), "furniture", "table", (115, 70, 35), (165, 115, 60), "stripes_h", "surface"),
    ("television", (0.28, 0.18), "wall", "rect", (20, 20, 25), (70, 95, 160), "screen", "watch"),
    ("door", (0.20, 0.46), "wall", "rect", (195, 145, 90), (140, 95, 55), "panels", "twist"),
    ("floor", (1.0, 0.48), "floor", "rect", (150, 155, 170), (120, 124, 138), "grid", "stand"),
)
# fmt: on
CATALOGUE: dict[str, ObjectKind] = {row[0]: _kind(*row) for row in _TABLE}

SEAT_TOP: dict[str, float] = {"chair": 0.45, "sofa/couch": 0.50, "bed": 0.35}
"""Where the sitting surface is, as a fraction of the seat's height from its top."""
