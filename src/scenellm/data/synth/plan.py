"""The person's scripted random plan: a list of per-frame intents.

A plan is a shuffled sequence of activities, one per object where the class affords one
(drink from the cup, sit on the sofa, put on the clothes...), mixed with glances at the
camera, walking off-screen and back, and stepping right in front of the lens. Each frame's
:class:`Intent` says where the person is and what they try to do; the world
(:mod:`scenellm.data.synth.world`) decides what actually happens and which labels follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenellm.data.synth.body import TORSO_W
from scenellm.data.synth.scene import Thing


@dataclass(frozen=True)
class Intent:
    x: float  # body centre line
    facing: int  # -1 left, +1 right, 0 camera
    pose: str = "stand"  # stand | sit | lie | closeup
    look: int | None = None  # object index the gaze goes to
    hand: int | None = None  # object index the hand is on (or holds)
    hand_at: str = "reach"  # reach | chest | head | side | table | wipe_l | wipe_r
    surface: int | None = None  # the table for hand_at table / wipe_*
    seat: int | None = None
    attach: str | None = None  # body | back | release | place, applied to `hand` first


WANDER = 0.8  # chance per frame that free eyes move to another object


class Planner:
    def __init__(self, things: list[Thing], size: tuple[int, int], rng: np.random.Generator):
        self.things, self.rng = things, rng
        self.glanced: int | None = None
        self.W, self.H = size
        self.x = float(rng.uniform(0.15, 0.85)) * self.W
        self.facing = int(rng.choice([-1, 1]))
        self.held: int | None = None
        self.intents: list[Intent] = []

    def emit(self, n: int = 1, **kw) -> None:
        kw.setdefault("hand", self.held)
        kw.setdefault("hand_at", "side" if self.held is not None else "reach")
        for _ in range(n):
            look = kw["look"] if "look" in kw else self.wander(kw["hand"])
            self.intents.append(Intent(x=self.x, facing=self.facing, **{**kw, "look": look}))

    def wander(self, busy: int | None) -> int | None:
        """Where the eyes go when the activity does not say: half the time the thing in hand,
        else often another object of the room (turning to it when the hands are free)."""
        if busy is not None and self.rng.random() < 0.5:
            return busy
        if self.rng.random() < WANDER:
            self.glanced = int(self.rng.integers(len(self.things)))
            if busy is None:  # hands free: turn towards it
                cx = self.things[self.glanced].centre[0]
                self.facing = 1 if cx > self.x else -1
        return self.glanced

    def find(self, role: str) -> int | None:
        hits = [i for i, t in enumerate(self.things) if role in t.kind.roles]
        return hits[0] if hits else None

    # -- locomotion -------------------------------------------------------------------
    def walk_to(self, tx: float, min_steps: int = 1, **kw) -> None:
        speed = 0.16 * self.W
        n = (
            max(min_steps, int(np.ceil(abs(tx - self.x) / speed)))
            if abs(tx - self.x) > 0.03 * self.W
            else 0
        )
        start = self.x
        for k in range(1, n + 1):
            self.x = start + (tx - start) * k / n
            self.facing = 1 if tx > start else -1
            self.emit(**kw)

    def approach(self, i: int, **kw) -> None:
        """Walk to stand beside thing ``i`` and turn towards it."""
        t = self.things[i]
        cx = t.centre[0]
        side = -1 if self.x < cx else 1
        gap = TORSO_W * self.H / 2 + min(t.w / 2, 0.08 * self.H) + 0.02 * self.H
        self.walk_to(float(np.clip(cx + side * gap, 0.04 * self.W, 0.96 * self.W)), **kw)
        self.facing = 1 if cx > self.x else -1

    # -- hands ------------------------------------------------------------------------
    def grab(self, i: int) -> None:
        self.approach(i, look=i if self.rng.random() < 0.7 else None)
        look = i if self.rng.random() < 0.8 else None
        self.emit(4 + int(self.rng.integers(0, 2)), hand=i, hand_at="reach", look=look)
        self.held = i

    def release(self) -> None:
        """Put the held thing down where the hand is (a table top under it, else the floor)
        and keep the hand on it for two frames: the same picture as the first frames of
        picking something up, told apart only by what came before."""
        i = self.held
        self.emit(hand=i, hand_at="reach", attach="place", look=i)
        self.emit(hand=i, hand_at="reach", look=i)
        self.held = None

    # -- activities -------------------------------------------------------------------
    def use_at_head(self, i: int) -> None:  # drink / eat
        self.grab(i)
        self.emit(3 + int(self.rng.integers(0, 2)), hand_at="head")
        self.release()

    def use_on_table(self, i: int, wipe: bool) -> None:  # write / wipe
        table = self.find("surface")
        self.grab(i)
        if table is None:
            self.carry(i, grabbed=True)
            return
        self.approach(table, hand_at="side")
        for k in range(3 + int(self.rng.integers(0, 2))):
            at = ("wipe_l", "wipe_r")[k % 2] if wipe else "table"
            self.emit(hand_at=at, surface=table, look=i)
        self.release()

    def carry(self, i: int, grabbed: bool = False) -> None:
        if not grabbed:
            self.grab(i)
        if self.rng.random() < 0.5:
            self.emit(2, hand_at="chest", look=i)  # read the book, check the phone
        self.walk_to(self.far_x(), min_steps=2, look=None)
        self.release()

    def put_on(self, i: int, how: str) -> None:  # wear / cover / sling on the back
        self.grab(i)
        if how == "back":
            self.walk_to(self.far_x(), min_steps=2)
        else:
            self.emit(hand_at="chest", look=i)
        self.emit(attach=how, look=None)
        self.held = None
        self.emit(int(self.rng.integers(1, 3)))

    def sit(self, i: int, lie: bool) -> None:
        seat = self.things[i]
        self.walk_to(seat.centre[0])
        tv = self.find("watch")
        self.facing = int(self.rng.choice([-1, 0, 1]))
        look = tv if tv is not None and self.rng.random() < 0.6 else None
        self.emit(4 + int(self.rng.integers(0, 3)), pose="sit", seat=i, look=look)
        if lie:
            self.facing = int(self.rng.choice([-1, 1]))
            self.emit(2 + int(self.rng.integers(0, 2)), pose="lie", seat=i)
        self.emit()

    def hand_on(self, i: int) -> None:  # lean on the table, twist the door knob, ...
        self.approach(i)
        self.emit(4 + int(self.rng.integers(0, 3)), hand=i, hand_at="reach", look=i)

    def watch(self, i: int) -> None:
        self.facing = 1 if self.things[i].centre[0] > self.x else -1
        self.emit(2 + int(self.rng.integers(0, 2)), look=i)

    def glance(self) -> None:
        """Turn to the camera for a moment (attention ``unsure`` for every object)."""
        facing, self.facing = self.facing, 0
        self.emit(int(self.rng.integers(1, 3)))
        self.facing = facing

    def far_x(self) -> float:
        """A spot at least a quarter of the room away, so that walking there takes steps."""
        for _ in range(10):
            x = float(self.rng.uniform(0.1, 0.9)) * self.W
            if abs(x - self.x) > 0.25 * self.W:
                return x
        return 0.1 * self.W if self.x > self.W / 2 else 0.9 * self.W

    def leave_and_return(self) -> None:
        edge = -0.25 * self.W if self.x < self.W / 2 else 1.25 * self.W
        self.walk_to(edge)
        self.emit(int(self.rng.integers(1, 3)))
        self.walk_to(self.far_x())

    def closeup(self, frames: int) -> None:
        """Step right in front of the lens for 1–2 frames, between two hands-free frames."""
        free = [
            k
            for k in range(1, frames)
            if all(it.hand is None and it.pose == "stand" for it in self.intents[k - 1 : k + 1])
        ]
        if not free:
            return
        k = free[int(self.rng.integers(len(free)))]
        at = self.intents[k]
        n = int(self.rng.integers(1, 3))
        self.intents[k:k] = [Intent(at.x, 0, pose="closeup")] * n


def _activity(planner: Planner, i: int, thing: Thing):
    roles, rng = thing.kind.roles, planner.rng
    if thing.attach == "body" or "stand" in roles:
        return None
    if roles & {"drink", "eat"}:
        return lambda: planner.use_at_head(i)
    if roles & {"write", "wipe"}:
        return lambda: planner.use_on_table(i, wipe="wipe" in roles)
    for role, how in (("back", "back"), ("wear", "body"), ("cover", "body")):
        if role in roles:
            return lambda how=how: planner.put_on(i, how)
    if "grasp" in roles:
        return lambda: planner.carry(i)
    if "sit" in roles:
        if rng.random() < 0.15:
            return lambda: planner.hand_on(i)  # fiddling with it: other_relationship
        return lambda: planner.sit(i, lie="lie" in roles and rng.random() < 0.6)
    if roles & {"surface", "twist"}:
        return lambda: planner.hand_on(i)
    return lambda: planner.watch(i)


def plan_video(
    things: list[Thing], size: tuple[int, int], frames: int, rng: np.random.Generator
) -> list[Intent]:
    """At least ``frames`` intents: the person's scripted random plan for one video."""
    p = Planner(things, size, rng)
    if rng.random() < 0.25:  # walk in from off-screen
        p.x = -0.25 * p.W if rng.random() < 0.5 else 1.25 * p.W
        p.emit()
        p.walk_to(float(rng.uniform(0.2, 0.8)) * p.W)
    steps = [a for i, t in enumerate(things) if (a := _activity(p, i, t)) is not None]
    fillers = [p.glance]
    if rng.random() < 0.15:
        fillers.append(p.leave_and_return)
    # Random order, fillers a little later on average so that objects get used.
    keys = (
        rng.random(len(steps) + len(fillers))
        + np.r_[np.zeros(len(steps)), 0.3 * np.ones(len(fillers))]
    )
    for k in np.argsort(keys, kind="stable"):
        if len(p.intents) >= frames:
            break
        (steps + fillers)[k]()
    while len(p.intents) < frames:
        p.watch(int(rng.integers(0, len(things))))
    if rng.random() < 0.15:
        p.closeup(frames)
    return p.intents[:frames]
