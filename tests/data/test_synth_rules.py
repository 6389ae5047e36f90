"""World rules of the synthetic AG data: replayed over a default-size dataset, and the
rule functions and state machine on hand-made cases."""

from __future__ import annotations

from collections import Counter

import pytest
from synth_checks import annotations, sequences, violations

from scenellm.data.synth import generate
from scenellm.data.synth.catalogue import CATALOGUE
from scenellm.data.synth.plan import Intent
from scenellm.data.synth.relations import ContactFacts, PairHistory, attention, spatial
from scenellm.data.synth.scene import BACK, FLOOR, FRONT, PERSON, Thing
from scenellm.data.synth.world import simulate


@pytest.fixture(scope="module")
def default_set(tmp_path_factory) -> tuple[dict, dict]:
    """The default 100 × 16 dataset, at a small frame size to keep the test fast."""
    root = tmp_path_factory.mktemp("synth") / "ag"
    generate(root, seed=0, videos=100, frames=16, size=(64, 48))
    return annotations(root)


def test_world_rules_hold_over_the_default_dataset(default_set):
    _, objects = default_set
    assert violations(objects) == []
    used = Counter(
        p for v in objects.values() for e in v if e["visible"] for p in e["contacting_relationship"]
    )
    for label in (
        "holding",
        "carrying",
        "sitting_on",
        "lying_on",
        "drinking_from",
        "eating",
        "have_it_on_the_back",
        "wearing",
        "touching",
        "not_contacting",
    ):
        assert used[label] > 0, label  # the rules are exercised, not vacuous
    spatial_sizes = Counter(
        len(e["spatial_relationship"]) for v in objects.values() for e in v if e["visible"]
    )
    assert spatial_sizes[2] > 0.2 * sum(spatial_sizes.values())  # often two labels


def test_default_dataset_has_the_realism_quirks(default_set):
    person, objects = default_set
    assert any(len(p["bbox"]) == 0 for p in person.values())
    assert any(not any(e["visible"] for e in v) for v in objects.values())
    assert any(not e["visible"] for v in objects.values() for e in v)
    frames = Counter(k.split("/")[0] for k in person)
    assert any(n <= 2 for n in frames.values())
    split = {k.split("/")[0]: v[0]["metadata"]["set"] for k, v in objects.items()}
    assert 20 <= Counter(split.values())["test"] <= 40


def test_replay_catches_broken_histories():
    def entry(con, cls="cup/glass/bottle", visible=True):
        return {
            "class": cls,
            "visible": visible,
            "bbox": (1.0, 1.0, 2.0, 2.0) if visible else None,
            "attention_relationship": ["unsure"] if visible else None,
            "spatial_relationship": ["behind"] if visible else None,
            "contacting_relationship": con if visible else None,
        }

    frames = [["touching"], ["touching"], None, ["touching"], ["holding"]]
    objects = {
        f"AAAAA.mp4/{t:06d}.png": [entry(c, visible=c is not None)] for t, c in enumerate(frames)
    }
    assert sequences(objects)[("AAAAA.mp4", "cup/glass/bottle")][2]["visible"] is False
    assert violations(objects) == [
        "AAAAA.mp4 cup/glass/bottle frame 4: holding after 1 contact frames"
    ]
    seated = {
        f"BBBBB.mp4/{t:06d}.png": [entry(c, cls="chair")]
        for t, c in enumerate([["not_contacting"], ["touching"], ["sitting_on"]])
    }
    assert len(violations(seated)) == 1


def test_contact_state_machine_needs_history():
    grasp = CATALOGUE["cup/glass/bottle"].roles
    h = PairHistory()
    hand = ContactFacts("hand")
    assert [h.contacting(grasp, hand) for _ in range(5)] == [["touching"]] * 3 + [["holding"]] * 2
    at_head = ContactFacts("hand", at_head=True, attached=True)
    assert [h.contacting(grasp, at_head) for _ in range(3)] == [
        ["holding"],
        ["drinking_from", "holding"],
        ["drinking_from", "holding"],
    ]
    walked = ContactFacts("hand", person_moved=True, attached=True)
    still = ContactFacts("hand", attached=True)
    assert [h.contacting(grasp, f) for f in (walked, still, still, still)] == [
        ["carrying", "holding"], ["carrying", "holding"], ["carrying", "holding"], ["holding"]
    ]  # carrying lasts two frames after the person stopped
    # put down: the cup rests again with the hand on it, as in the first frames above
    assert h.contacting(grasp, hand) == ["holding"]
    assert h.contacting(grasp, ContactFacts(None)) == ["not_contacting"]
    assert h.contacting(grasp, hand) == ["touching"]  # the history restarted

    sofa = CATALOGUE["sofa/couch"].roles
    h = PairHistory()
    seq = [h.contacting(sofa, ContactFacts("seat", pose=p)) for p in ["sit"] * 4 + ["lie"] * 2]
    assert seq == [
        ["touching"],
        ["leaning_on"],
        ["sitting_on"],
        ["sitting_on"],
        ["lying_on"],
        ["lying_on"],
    ]
    h = PairHistory()
    early = [h.contacting(sofa, ContactFacts("seat", pose=p)) for p in ["sit"] * 3 + ["lie"]]
    assert early[-1] == ["other_relationship"]  # lay down before sitting two frames

    bag = CATALOGUE["bag"].roles
    assert PairHistory().contacting(bag, ContactFacts("back")) == ["other_relationship"]
    assert PairHistory(back_ok=True).contacting(bag, ContactFacts("back")) == [
        "have_it_on_the_back"
    ]


def test_spatial_and_attention_rules():
    person = (40.0, 20.0, 60.0, 100.0)  # centre (50, 60), 80 px tall
    assert spatial((44, 0, 56, 10), BACK, person) == ["above", "behind"]
    assert spatial((44, 90, 56, 110), FRONT, person) == ["beneath", "in_front_of"]
    assert spatial((100, 50, 110, 70), BACK, person) == ["on_the_side_of"]
    assert spatial((42, 45, 58, 75), PERSON, person) == ["in"]
    assert spatial((42, 30, 58, 60), PERSON, person) == ["above", "in"]
    # beside the person: in front along the way they last walked, behind the other way
    assert spatial((100, 50, 110, 70), BACK, person, heading=1) == ["in_front_of"]
    assert spatial((100, 50, 110, 70), BACK, person, heading=-1) == ["behind"]
    assert spatial((0, 50, 10, 70), BACK, person, heading=-1) == ["in_front_of"]
    right = (1.0, 0.0)
    # attention lags the eyes: 2 of the previous 4 frames in the gaze cone
    assert attention(right, (False, True, False, True)) == ["looking_at"]
    assert attention(right, (True, True, False, False, False, True), 1) == ["not_looking_at"]
    assert attention(right, (), gazed_ago=8) == ["not_looking_at"]
    assert attention(right, (), gazed_ago=9) == ["unsure"]
    # facing the camera: the last label carries over
    assert attention(None, (True, True), before=["looking_at"]) == ["looking_at"]
    assert attention(None, (True, True)) == ["unsure"]


def test_held_object_stays_until_held_then_follows_the_hand():
    size = (160, 120)
    cup = Thing(CATALOGUE["cup/glass/bottle"], 8.0, 12.0, BACK, (0.0, 0.0, 0.0, 0.0))
    cup.place(100.0, FLOOR[BACK] * size[1])
    start = cup.box
    plan = [Intent(88.0, 1, hand=0, hand_at="reach")] * 5
    plan += [Intent(88.0 - 20.0 * k, -1, hand=0, hand_at="side") for k in (1, 2, 3)]
    states = simulate([cup], plan, size)
    labels = [s.objects[0].contacting for s in states]
    assert labels == [["touching"]] * 3 + [["holding"]] * 2 + [["carrying", "holding"]] * 3
    assert all(s.objects[0].box == start for s in states[:5])
    for s in states[5:]:
        x0, y0, x1, y1 = s.objects[0].box
        assert (x0 + x1) / 2 == pytest.approx(s.hand[0]) and (y0 + y1) / 2 == pytest.approx(
            s.hand[1]
        )
    assert states[-1].objects[0].box[0] < start[0] - 50  # carried across the room


def test_short_contact_never_picks_up():
    size = (160, 120)
    cup = Thing(CATALOGUE["cup/glass/bottle"], 8.0, 12.0, BACK, (0.0, 0.0, 0.0, 0.0))
    cup.place(100.0, FLOOR[BACK] * size[1])
    start = cup.box
    plan = [Intent(88.0, 1, hand=0, hand_at="reach")] * 3 + [Intent(40.0, -1)] * 2
    states = simulate([cup], plan, size)
    assert [s.objects[0].contacting for s in states] == [["touching"]] * 3 + [
        ["not_contacting"]
    ] * 2
    assert states[-1].objects[0].box == start
