"""Oracle ceilings of the synthetic world: history decides labels that one frame cannot,
the oracles agree with a plain-Python reference, and ``data inspect`` reports them."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from typer.testing import CliRunner

from scenellm.cli.main import app
from scenellm.data.ag import load_action_genome
from scenellm.data.ceilings import STATES_FILE, ceilings, read_states
from scenellm.data.synth import generate
from scenellm.data.synth.catalogue import CATALOGUE
from scenellm.data.synth.plan import Intent
from scenellm.data.synth.scene import BACK, FLOOR, Thing
from scenellm.data.synth.world import simulate
from scenellm.data.vocab import KINDS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The default-size world (150 videos × 16 frames) at a small frame size."""
    root = tmp_path_factory.mktemp("world") / "ag"
    generate(root, seed=0, videos=150, frames=16, size=(64, 48))
    return root, load_action_genome(root), read_states(root)


def test_a_put_down_looks_like_a_pick_up_but_is_labelled_by_its_past():
    size = (160, 120)
    cup = Thing(CATALOGUE["cup/glass/bottle"], 8.0, 12.0, BACK, (0.0, 0.0, 0.0, 0.0))
    cup.place(100.0, FLOOR[BACK] * size[1])
    plan = [Intent(88.0, 1, hand=0, hand_at="reach")] * 5  # pick up
    plan += [Intent(88.0, 1, hand=0, hand_at="side")] * 2  # hold at the side
    plan += [Intent(88.0, 1, hand=0, hand_at="reach", attach="place"),
             Intent(88.0, 1, hand=0, hand_at="reach")]  # put down
    views = [s.objects[0] for s in simulate([cup], plan, size)]
    assert [v.contacting for v in views] == [["touching"]] * 3 + [["holding"]] * 6
    pick, put = views[1], views[8]
    assert pick.state == put.state  # the same picture: a hand on a resting cup
    assert pick.memory != put.memory and pick.contacting != put.contacting


def _reference_recall(data, states, split: str, with_memory: bool, k: int) -> float:
    """R@k (PREDCLS, with constraint) of the frequency oracle in plain Python, valid while a
    frame has at most k predictions (3 per object): each (pair, kind) row predicts the
    label of highest frequency among pairs with the same key (first one on ties, as
    ``np.argmax``); a hit is that label among the pair's true ones."""
    rows = []
    for frames in data.split(split).values():
        for frame in frames:
            for o, (s, m) in zip(frame.objects, states[frame.key], strict=True):
                rows.append((frame.key, o, (s, m) if with_memory else s))
    assert max(Counter(key for key, _, _ in rows).values()) * 3 <= k
    counts = {kind: defaultdict(lambda n=len(names): np.zeros(n)) for kind, names in KINDS.items()}
    for _, o, key in rows:
        for kind in KINDS:
            counts[kind][key][list(getattr(o, kind))] += 1
    hits, truth = Counter(), Counter()
    for frame_key, o, key in rows:
        for kind in KINDS:
            labels = getattr(o, kind)
            truth[frame_key] += len(labels)
            hits[frame_key] += int(np.argmax(counts[kind][key])) in labels
    return 100 * float(np.mean([hits[f] / truth[f] for f in truth]))


def test_oracles_match_a_plain_python_reference(world):
    _, data, states = world
    c = ceilings(data, states)
    for split in ("train", "test"):
        for name, with_memory in (("per_frame", False), ("history", True)):
            expected = _reference_recall(data, states, split, with_memory, 50)
            assert c[split][name]["R@50"] == pytest.approx(expected, abs=0.006)


def test_without_memory_the_two_oracles_agree(world, tmp_path):
    _, data, states = world
    flat = {key: [(s, 0) for s, _ in pairs] for key, pairs in states.items()}
    c = ceilings(data, flat)
    assert c["test"]["per_frame"] == c["test"]["history"]
    assert c["test"]["gap_R@20"] == 0


def test_the_default_world_needs_history_and_many_objects(world):
    root, data, states = world
    c = ceilings(data, states)
    for split in ("train", "test"):
        history, per_frame = c[split]["history"], c[split]["per_frame"]
        assert history["R@10"] < history["R@20"] < history["R@50"]  # ranking is tested
        assert c[split]["gap_R@20"] >= 10.0  # the past is worth 10 points of R@20
        assert history["R@50"] - per_frame["R@50"] >= 10.0
        frames = [f for v in data.split(split).values() for f in v]
        assert 6.0 <= np.mean([len(f.objects) for f in frames]) <= 8.0
        contacting = Counter(p for f in frames for o in f.objects for p in o.contacting)
        assert contacting[KINDS["contacting"].index("not_contacting")] <= 0.5 * sum(
            contacting.values())
    low, high = c["test"]["history_R@20_ci95"]
    assert low < c["test"]["history"]["R@20"] < high


def test_inspect_reports_label_shares_and_ceilings(world, tmp_path):
    root, _, _ = world
    result = CliRunner().invoke(app, ["data", "inspect", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    test = report["test"]
    assert set(test["ceilings"]) == {"per_frame", "history", "gap_R@20", "history_R@20_ci95"}
    shares = test["labels"]["attention"]
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert max(shares.values()) < 0.6  # no attention label dominates
    assert test["not_contacting_share"] == test["labels"]["contacting"]["not_contacting"]


def test_inspect_without_world_states_and_with_broken_ones(tmp_path):
    root = tmp_path / "ag"
    generate(root, seed=1, videos=6, frames=5, size=(48, 36))
    states = root / STATES_FILE
    states.write_text("{not json")
    result = CliRunner().invoke(app, ["data", "inspect", str(root), "--json"])
    assert result.exit_code == 2
    assert "unreadable world states" in result.output and len(result.output.splitlines()) == 1
    states.unlink()
    result = CliRunner().invoke(app, ["data", "inspect", str(root), "--json"])
    assert result.exit_code == 0, result.output
    assert all("ceilings" not in split for split in json.loads(result.output).values())
