"""The synthetic world: one person acting in a room, frame by frame, and the rules that
turn its state into Action Genome annotations.

A video is a room (:mod:`~scenellm.data.synth.scene`: the floor and 5–6 other objects of
distinct classes, clothes and shoes often among them and usually worn, each on a depth
layer) and a person following a scripted random plan
(:mod:`~scenellm.data.synth.plan`: walk, reach, pick up, put down, drink, sit, lie, put on,
leave, step in front of the lens, and eyes that wander between objects). Labels are
computed from the world state and its past, never drawn at random. Frames are the sampled
(annotated) frames, so "n frames" below means n annotated frames in a row.

Many labels need the past: a single frame often looks the same for different labels (a
hand on a resting cup is *touching* while picking it up and *holding* while putting it
down; attention is where the eyes rested in the previous frames, not where they point
now; an object beside the person is *in front of* them if it lies the way they last
walked). Each
visible object's frame state and the rules' memory are written to ``world/states.json``,
from which :mod:`scenellm.data.ceilings` computes what an oracle seeing only the present
can score against one that also knows the past.

World rules
-----------
Objects
  * A held object follows the hand; a worn one the body (clothes on the torso, shoes on
    the feet, a blanket wrapped around); a bag on the back hangs behind the torso. A
    released object drops onto the table top it is over, else onto the back floor.
  * Visibility: an object is invisible (``visible`` False, ``bbox`` None, all relation
    lists None) when less than half of its box is inside the image, when ≥ 70 % of it lies
    under boxes of things drawn in front of it (nearer layers, or the person unless the
    person is in contact with it), or when the person stands right in front of the lens
    (``closeup``: every object is invisible, so STTran drops that frame).
  * The person's box is empty, shape (0, 4), when less than half of it is in the image
    (walking in, out, or off-screen).
Spatial (object → person, multi-label, from boxes and layers; at least one label)
  * ``above`` / ``beneath``: vertical centre offset beyond 0.15 person heights;
  * ``in``: a worn object (person layer) whose box is ≥ 80 % inside the person box;
  * otherwise, beside the person (horizontal overlap ≤ 30 % of the narrower box):
    ``in_front_of`` on the side the person last walked towards, ``behind`` on the other
    (``on_the_side_of`` before they have walked at all); overlapping: ``in_front_of`` /
    ``behind`` by layer (nearer / farther than the person);
  * if nothing applies, the dominant offset (side, above or beneath).
Attention (exactly one label per visible object; it follows the eyes with a lag)
  * the gaze cone: within 30° of the gaze ray from the head (or touching the head); the
    gaze goes to the object the person attends to, if it is on the side they face, else
    straight ahead slightly down; free eyes move to another object with chance 0.8 per
    frame, and a person with free hands turns towards it;
  * facing the camera (no gaze): the previous frame's label carries over (``unsure`` for
    an object not labelled then);
  * ``looking_at`` when the object was in the cone in at least 2 of the previous 4 frames;
  * else ``not_looking_at`` when it was in the cone at all in the previous 8 frames, else
    ``unsure``.
Contacting (multi-label, a per-(person, object) state machine over consecutive *observed*
frames; every counter restarts when the object is invisible or contact stops)
  * no contact → ``not_contacting``; the floor is ``standing_on`` under a standing person
    and ``touching`` under a seated one;
  * hand on a resting object: ``touching`` for the first 3 frames; from the 4th (≥ 3 prior
    contact frames) a graspable object is ``holding`` and from then on follows the hand;
    a table becomes ``leaning_on``, a door ``twisting`` (the knob), other furniture
    ``other_relationship``;
  * put down: the object rests where the hand let it go (a table top under it, else the
    floor) with the hand on it for two frames, which stay ``holding`` — the same picture
    as the ``touching`` frames of picking it up;
  * while holding: ``carrying`` when the person walked within the last 2 frames;
    ``drinking_from`` (cup/glass/bottle) / ``eating`` (food, sandwich) once it has been
    held at the mouth for ≥ 2 frames; ``writing_on`` (paper/notebook) when it rests over a
    table; ``wiping`` (towel) when it rests over a table and moved while the person stood;
  * seated on a chair/sofa/bed: ``touching`` the first frame, ``leaning_on`` the second,
    ``sitting_on`` from the third (≥ 2 prior settled frames); lying on a sofa/bed is
    ``lying_on`` once ``sitting_on`` held ≥ 2 frames (else ``other_relationship``);
  * worn: ``wearing`` (clothes, shoe) or ``covered_by`` (blanket);
  * a bag is slung onto the back only after ≥ 2 ``carrying`` frames, then
    ``have_it_on_the_back``; if that history was not observed, ``other_relationship``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scenellm.data.synth.body import Figure, anchor, back_point, figure, person_box, worn_box
from scenellm.data.synth.catalogue import SEAT_TOP
from scenellm.data.synth.kinematics import contact_kind, drop, gaze, grip, hold_point
from scenellm.data.synth.occlusion import coverage, in_frame
from scenellm.data.synth.plan import Intent
from scenellm.data.synth.relations import (
    ATTENTION_MEMORY,
    CARRY_BEFORE_BACK,
    GAZE_WINDOW,
    ContactFacts,
    PairHistory,
    attention,
    in_gaze,
    spatial,
)
from scenellm.data.synth.scene import BEHIND_BODY, HAND, PERSON, Box, Thing

Point = tuple[float, float]
HIDDEN = 0.7  # share of an object under nearer boxes at which it counts as occluded
PARTLY_HIDDEN = 0.3  # (for the frame state only) an object this much hidden is partly hidden


@dataclass(frozen=True)
class ObjectView:
    box: Box  # unclipped, pixels
    layer: int
    rank: int
    visible: bool
    attention: list[str] | None
    spatial: list[str] | None
    contacting: list[str] | None
    state: tuple | None = None  # what this frame shows of the pair (visible objects)
    memory: tuple | None = None  # what the pair's past adds (the rules' counters)


@dataclass(frozen=True)
class FrameState:
    figure: Figure
    hand: Point
    arm: bool  # the arm is stretched to the hand (reaching or holding)
    gaze: Point | None  # unit vector, None when facing the camera
    person_box: Box  # unclipped
    person_seen: bool
    objects: tuple[ObjectView, ...]


def _attach(it: Intent, things: list[Thing], history: list[PairHistory], H: float) -> None:
    """Apply the plan's release / put-on requests; a hand lets go of what it no longer uses."""
    for i, t in enumerate(things):
        if t.attach == "hand" and (it.hand != i or it.attach in ("release", "place")):
            drop(t, things, H)
    if it.hand is None or things[it.hand].attach != "hand":
        return
    t, h = things[it.hand], history[it.hand]
    if it.attach == "body":
        t.attach, t.layer = "body", PERSON
    elif it.attach == "back" and h.carried >= CARRY_BEFORE_BACK:
        t.attach, t.layer = "back", BEHIND_BODY
        h.back_ok = True


def _follow(t: Thing, fig: Figure, hand: tuple[float, float], H: float) -> None:
    """Move an attached object with the hand, body or back."""
    if t.attach == "hand":
        t.centre_on(*hand)
    elif t.attach == "back":
        t.centre_on(*back_point(fig))
    elif t.attach == "body":
        role = "shoe" if t.kind.name == "shoe" else "cover" if "cover" in t.kind.roles else ""
        t.box = worn_box(fig, role, t.w, t.h, H)


def _pose(
    it: Intent, things: list[Thing], size: tuple[int, int], moved: bool
) -> tuple[Figure, Point, Thing | None]:
    """The body for this intent, where its hand is, and the thing the hand is busy with."""
    H = size[1]
    seat = things[it.seat] if it.seat is not None else None
    top = seat.box[1] + SEAT_TOP[seat.kind.name] * seat.h if seat is not None else 0.0
    fig = figure(it.x, it.pose, it.facing, size, seat.box if seat else None, top, moved)
    target = things[it.hand] if it.hand is not None and it.pose != "closeup" else None
    if target is None:
        return fig, fig.rest, None
    if target.attach == "hand":
        return fig, hold_point(it, target, things, fig, H), target
    return fig, grip(target, fig, H) if it.hand_at == "reach" else fig.rest, target


def simulate(things: list[Thing], plan: list[Intent], size: tuple[int, int]) -> list[FrameState]:
    """Run the plan in the room; ``things`` are moved in place. One state per intent."""
    W, H = size
    history = [PairHistory() for _ in things]
    gazed_ago = [ATTENTION_MEMORY + 1] * len(things)  # frames since last inside the gaze cone
    gazed: list[tuple[bool, ...]] = [()] * len(things)  # cone hits of the last frames
    before: list[list[str] | None] = [None] * len(things)  # last frame's attention labels
    prev_x = plan[0].x if plan else 0.0
    heading = 0  # the direction the person last walked (0: not yet)
    prev_centres = [t.centre for t in things]
    states = []
    for it in plan:
        _attach(it, things, history, H)
        moved = abs(it.x - prev_x) >= 1.0
        memory_heading = heading
        if moved:
            heading = 1 if it.x > prev_x else -1
        fig, hand, target = _pose(it, things, size, moved)
        for t in things:
            _follow(t, fig, hand, H)
        pbox = (0.0, 0.0, float(W), float(H)) if it.pose == "closeup" else person_box(fig, hand)
        seen = in_frame(pbox, W, H) >= 0.5
        kinds = [contact_kind(i, t, it) for i, t in enumerate(things)]
        hidden = _hidden(things, kinds, pbox, size)
        look = gaze(it, fig, things) if seen else None
        mouth = anchor(fig, "head", H)
        views = []
        for i, t in enumerate(things):
            gazed_ago[i] = min(gazed_ago[i] + 1, ATTENTION_MEMORY + 1)
            visible = it.pose != "closeup" and in_frame(t.box, W, H) >= 0.5 and hidden[i] < HIDDEN
            if not visible:
                history[i], before[i] = PairHistory(), None
                views.append(ObjectView(t.box, t.layer, t.rank, False, None, None, None))
                continue
            behind = look is not None and (t.centre[0] - fig.head[0]) * it.facing <= -fig.head[2]
            facts = ContactFacts(
                kinds[i],
                it.pose,
                at_head=t.attach == "hand" and math.dist(t.centre, mouth) <= fig.head[2],
                on_surface=t.attach == "hand" and _on_surface(t, things, H),
                person_moved=moved,
                object_moved=math.dist(t.centre, prev_centres[i]) >= 1.0,
                attached=t.attach == "hand",
            )
            memory = (*history[i].memory(), gazed_ago[i], gazed[i], before[i], memory_heading)
            contacting = history[i].contacting(t.kind.roles, facts)
            if history[i].lifts:
                t.attach, t.layer = "hand", HAND
            boxes = spatial(t.box, t.layer, pbox, heading)
            in_cone = in_gaze(t.centre, fig.head, look)
            att = attention(look, gazed[i], gazed_ago[i], before[i])
            before[i] = att
            if in_cone:
                gazed_ago[i] = 0
            gazed[i] = (*gazed[i], in_cone)[-GAZE_WINDOW:]
            state = (
                t.kind.name, facts.kind, facts.pose, it.facing, it.hand_at if facts.kind == "hand"
                else None, facts.at_head, facts.on_surface, facts.person_moved, facts.attached,
                hidden[i] >= PARTLY_HIDDEN, in_cone, behind,
                look is None, tuple(spatial(t.box, t.layer, pbox)),
                1 if t.centre[0] > (pbox[0] + pbox[2]) / 2 else -1,
            )
            views.append(
                ObjectView(t.box, t.layer, t.rank, True, att, boxes, contacting, state, memory)
            )
        states.append(FrameState(fig, hand, target is not None, look, pbox, seen, tuple(views)))
        prev_x, prev_centres = it.x, [t.centre for t in things]
    return states


def _on_surface(t: Thing, things: list[Thing], H: float) -> bool:
    cx, bottom = t.centre[0], t.box[3]
    return any(
        "surface" in s.kind.roles
        and s.box[0] <= cx <= s.box[2]
        and abs(bottom - s.box[1]) <= 0.03 * H
        for s in things
    )


def _hidden(
    things: list[Thing], kinds: list[str | None], pbox: Box, size: tuple[int, int]
) -> list[float]:
    """Occluded share per object: under nearer objects, or the person unless in contact."""
    order = sorted(range(len(things)), key=lambda i: (things[i].layer, things[i].rank, i))
    person_key = (PERSON, -1, -1)
    boxes = [t.box for t in things] + [pbox]
    occluders = []
    for i, t in enumerate(things):
        key = (t.layer, t.rank, i)
        over = [j for j in order if (things[j].layer, things[j].rank, j) > key]
        if person_key > key and kinds[i] is None:
            over.append(len(things))
        occluders.append(over)
    return coverage(boxes, [*occluders, []], *size)[: len(things)]
