"""Person–object relations derived from world state (geometry, gaze, contact history).

The rules are listed in :mod:`scenellm.data.synth.world`; this file implements them.
Boxes are (x0, y0, x1, y1) pixels; labels come back in AG order (``vocab.KINDS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scenellm.data import vocab
from scenellm.data.synth.scene import PERSON, Box

VERTICAL = 0.15  # |Δy| / person height beyond which an object is above / beneath
BESIDE = 0.3  # horizontal overlap / narrower width at or below which it is on the side
INSIDE = 0.8  # share of a worn object's box inside the person box to call it `in`
GAZE_COS = math.cos(math.radians(30))  # half-angle of the gaze cone
HOLD_AFTER, SIT_AFTER, USE_AFTER, CARRY_BEFORE_BACK = 3, 2, 2, 2
CARRY_AFTER = 2  # frames a stopped person still carries what they walked with
GAZE_WINDOW, FIXATION = 4, 2  # looking_at: in the gaze cone in 2 of the previous 4 frames
ATTENTION_MEMORY = 8  # frames after a glance an object stays not_looking_at (then unsure)


def _ordered(labels: set[str], kind: str) -> list[str]:
    return [p for p in vocab.KINDS[kind] if p in labels]


def spatial(box: Box, layer: int, person: Box, heading: int = 0) -> list[str]:
    """Object → person spatial labels: vertical offset, then depth order, or for an object
    beside the person its side along their way: ``in_front_of`` on the side they last
    walked towards (``heading`` ±1), ``behind`` on the other (``on_the_side_of`` before
    the person has walked)."""
    ow, pw, ph = box[2] - box[0], person[2] - person[0], person[3] - person[1]
    dx = (box[0] + box[2] - person[0] - person[2]) / 2
    dy = ((box[1] + box[3] - person[1] - person[3]) / 2) / ph
    overlap = max(0.0, min(box[2], person[2]) - max(box[0], person[0])) / min(ow, pw)
    inter = overlap * min(ow, pw) * max(0.0, min(box[3], person[3]) - max(box[1], person[1]))
    inside = inter / (ow * (box[3] - box[1]))
    labels: set[str] = set()
    if dy < -VERTICAL:
        labels.add("above")
    elif dy > VERTICAL:
        labels.add("beneath")
    if layer == PERSON and inside >= INSIDE:
        labels.add("in")
    elif overlap <= BESIDE:
        labels.add("on_the_side_of" if heading == 0 else "in_front_of" if dx * heading > 0
                   else "behind")
    elif layer > PERSON:
        labels.add("in_front_of")
    elif layer < PERSON:
        labels.add("behind")
    if not labels:  # same depth, overlapping, level: name the dominant offset
        labels.add("on_the_side_of" if abs(dx) / pw > abs(dy) else "above" if dy < 0 else "beneath")
    return _ordered(labels, "spatial")


def in_gaze(
    centre: tuple[float, float],
    head: tuple[float, float, float],
    gaze: tuple[float, float] | None,
) -> bool:
    """The object centre lies within 30° of the gaze ray, or touches the head."""
    if gaze is None:
        return False
    vx, vy = centre[0] - head[0], centre[1] - head[1]
    dist = math.hypot(vx, vy)
    return dist <= head[2] or (vx * gaze[0] + vy * gaze[1]) / dist >= GAZE_COS


def attention(
    gaze: tuple[float, float] | None,
    gazed_before: tuple[bool, ...] = (),
    gazed_ago: int = ATTENTION_MEMORY + 1,
    before: list[str] | None = None,
) -> list[str]:
    """One label; attention follows the eyes with a lag.

    No gaze (the person faces the camera): attention cannot be seen to change, so the
    previous frame's label (``before``) carries over (unsure when the object was not
    labelled then). Else ``looking_at`` when the object was inside the gaze cone in at least
    ``FIXATION`` of the previous ``GAZE_WINDOW`` frames (``gazed_before``, latest last):
    what the eyes rested on, not where they point this instant; else ``not_looking_at``
    when it was inside the cone at all within the previous ``ATTENTION_MEMORY`` frames
    (``gazed_ago``: 1 = the previous frame), else ``unsure``: nobody can tell whether the
    person attends to what they have not glanced at for a while."""
    if gaze is None:
        return list(before) if before else ["unsure"]
    if sum(gazed_before[-GAZE_WINDOW:]) >= FIXATION:
        return ["looking_at"]
    if gazed_ago <= ATTENTION_MEMORY:
        return ["not_looking_at"]
    return ["unsure"]


@dataclass(frozen=True)
class ContactFacts:
    """What the world shows about one (person, object) pair in one frame."""

    kind: str | None  # None | "hand" | "seat" | "worn" | "back" | "feet"
    pose: str = "stand"
    at_head: bool = False  # a held object at the mouth
    on_surface: bool = False  # a held object resting over a table top
    person_moved: bool = False  # the person walked since the previous frame
    object_moved: bool = False  # the object moved since the previous frame
    attached: bool = False  # the object follows the hand (it is lifted)


@dataclass
class PairHistory:
    """Counters over the pair's consecutive observed frames; reset when unseen."""

    hand: int = 0  # frames of hand contact
    head: int = 0  # frames held at the head
    carried: int = 0  # frames carried in the current hold
    since_walk: int = CARRY_AFTER + 1  # frames since the person last walked holding it
    held: bool = False  # it was lifted in the current hand contact (so it is being put down)
    seat: int = 0  # frames settled on the seat
    sat: int = 0  # of those, frames labelled sitting_on
    back_ok: bool = False  # it reached the back after being carried long enough
    lifts: bool = False  # this frame's labels lift it into the hand

    def memory(self) -> tuple:
        """What the pair's past decides, as a hashable key (counters capped where the rules
        stop looking)."""
        return (min(self.hand, HOLD_AFTER + 1), min(self.head, USE_AFTER), min(self.carried,
                CARRY_BEFORE_BACK), min(self.since_walk, CARRY_AFTER + 1), self.held,
                min(self.seat, SIT_AFTER + 1), min(self.sat, 2), self.back_ok)

    def contacting(self, roles: frozenset[str], f: ContactFacts) -> list[str]:
        """Advance the counters by one frame and return its contacting labels."""
        self.lifts = False
        if f.kind != "hand":
            self.hand = self.head = self.carried = 0
            self.since_walk, self.held = CARRY_AFTER + 1, False
        if f.kind != "seat":
            self.seat = self.sat = 0
        if f.kind != "back":
            self.back_ok = False
        if f.kind is None:
            return ["not_contacting"]
        if f.kind == "worn":
            return ["covered_by"] if "cover" in roles else ["wearing"]
        if f.kind == "feet":
            return ["standing_on"] if f.pose == "stand" else ["touching"]
        if f.kind == "back":
            return ["have_it_on_the_back"] if self.back_ok else ["other_relationship"]
        if f.kind == "seat":
            return self._seat(roles, f)
        return self._hand(roles, f)

    def _seat(self, roles: frozenset[str], f: ContactFacts) -> list[str]:
        self.seat += 1
        if self.seat <= SIT_AFTER:
            return ["touching"] if self.seat == 1 else ["leaning_on"]
        if f.pose == "lie":
            return ["lying_on"] if "lie" in roles and self.sat >= 2 else ["other_relationship"]
        self.sat += 1
        return ["sitting_on"]

    def _hand(self, roles: frozenset[str], f: ContactFacts) -> list[str]:
        self.hand += 1
        if not f.attached and self.held:  # setting down what was lifted: still holding it
            return ["holding"]
        if not f.attached and self.hand <= HOLD_AFTER:
            return ["touching"]
        if "grasp" not in roles:
            return (
                ["leaning_on"]
                if "surface" in roles
                else ["twisting"]
                if "twist" in roles
                else ["other_relationship"]
            )
        labels = {"holding"}
        self.lifts = not f.attached
        self.held = True
        self.head = self.head + 1 if f.at_head else 0
        self.since_walk = 0 if f.person_moved else self.since_walk + 1
        if self.since_walk <= CARRY_AFTER:
            labels.add("carrying")
        if f.person_moved:
            self.carried += 1
        if self.head >= USE_AFTER and "drink" in roles:
            labels.add("drinking_from")
        if self.head >= USE_AFTER and "eat" in roles:
            labels.add("eating")
        if f.on_surface and "write" in roles:
            labels.add("writing_on")
        if f.on_surface and f.object_moved and not f.person_moved and "wipe" in roles:
            labels.add("wiping")
        return _ordered(labels, "contacting")
