"""Loader counts against hand-built AG fixtures, one per STTran filtering rule."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ag_builder import obj, person, video, write_ag

from scenellm.data.ag import load_action_genome
from scenellm.errors import DataError


def merge(*parts):
    pb, ob = {}, {}
    for p, o in parts:
        pb.update(p)
        ob.update(o)
    return pb, ob


@pytest.fixture
def ag(tmp_path):
    two_objects = [obj(), obj("chair", (30, 40, 10, 10), spa=("beneath", "behind"),
                              con=("sitting_on", "touching"))]
    parts = [
        video("AAAAA", 4, "train", [two_objects, [obj()], [obj()], [obj()]]),
        # frame 1 has only an invisible object (dropped), frame 2 has no person (dropped)
        video("BBBBB", 5, "train",
              [[obj()], [obj(visible=False)], [obj()], [obj(), obj("book", visible=False)],
               [obj()]],
              person_boxes=[(1, 1, 50, 50), (1, 1, 50, 50), None, (1, 1, 50, 50),
                            (1, 1, 50, 50)]),
        video("CCCCC", 2, "train"),  # 2 frames: dropped (needs more than 2)
        video("DDDDD", 4, "train", person_boxes=[None, None, (1, 1, 9, 9), (1, 1, 9, 9)]),
        video("EEEEE", 3, "test"),
        video("FFFFF", 1, "test"),
    ]
    pb, ob = merge(*parts)
    return write_ag(tmp_path / "ag", pb, ob)


def test_counts_follow_every_filtering_rule(ag):
    counts = load_action_genome(ag).counts()
    # AAAAA: 4 frames, 5 objects; BBBBB: frames 0, 3, 4 kept (3 objects, the invisible book
    # dropped); CCCCC too short; DDDDD 2 frames left after person filtering; FFFFF 1 frame.
    assert counts["train"] == {"videos": 2, "frames": 7, "objects": 8,
                               "relations": 8 * 3 + 2}
    assert counts["test"] == {"videos": 1, "frames": 3, "objects": 3, "relations": 9}


def test_boxes_converted_and_labels_indexed(ag):
    frame = load_action_genome(ag).split("train")["AAAAA.mp4"][0]
    chair = frame.objects[1]
    assert chair.box == (30.0, 40.0, 40.0, 50.0)
    assert chair.class_name == "chair" and chair.class_id == 8
    assert chair.spatial == (1, 3) and chair.contacting == (10, 12)
    assert frame.person_box == (5.0, 5.0, 60.0, 80.0) and frame.size == (160, 120)


def test_min_frames_parameter(ag):
    counts = load_action_genome(ag, min_frames=2).counts()
    assert counts["train"]["videos"] == 4  # CCCCC and DDDDD now kept


def test_inspect_cli_json(ag):
    out = subprocess.run([sys.executable, "-m", "scenellm.cli.main", "data", "inspect",
                          str(ag), "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["test"]["frames"] == 3


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:40]), "truncated"),
    (lambda p: p.write_bytes(b"not a pickle at all"), "not a readable pickle"),
    (lambda p: p.unlink(), "file not found"),
])
def test_damaged_pickle_gives_one_line_error(ag, damage, message):
    damage(ag / "annotations" / "person_bbox.pkl")
    with pytest.raises(DataError, match=message):
        load_action_genome(ag)


def test_malicious_pickle_is_refused_and_never_runs(ag, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    with open(ag / "annotations" / "object_bbox_and_relationship.pkl", "wb") as f:
        pickle.dump({"x": Payload()}, f)
    with pytest.raises(DataError, match="refuses to load global 'posix.system'"):
        load_action_genome(ag)
    assert not marker.exists()
    out = subprocess.run([sys.executable, "-m", "scenellm.cli.main", "data", "inspect",
                          str(ag), "--json"], capture_output=True, text=True)
    assert out.returncode == 2 and "refuses" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not marker.exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda pb, ob: ob.pop(next(iter(ob))), "no objects for frame"),
    (lambda pb, ob: ob[next(iter(ob))][0].update({"class": "unicorn"}), "unknown object class"),
    (lambda pb, ob: ob[next(iter(ob))][0].update({"bbox": None}), "needs an .x, y, w, h. bbox"),
    (lambda pb, ob: ob[next(iter(ob))][0].update({"spatial_relationship": ["near"]}),
     "unknown spatial predicate"),
    (lambda pb, ob: ob[next(iter(ob))][0]["metadata"].update({"set": "val"}), "metadata.set"),
    (lambda pb, ob: pb[next(iter(pb))].update({"bbox": np.zeros(3)}), r"\(k, 4\) array"),
])
def test_malformed_entries_give_clear_errors(tmp_path, mutate, message):
    pb, ob = video("AAAAA", 3)
    mutate(pb, ob)
    root = write_ag(tmp_path / "ag", pb, ob)
    with pytest.raises(DataError, match=message):
        load_action_genome(root)


def test_wrong_class_file_is_reported(ag):
    (ag / "annotations" / "object_classes.txt").write_text("person\nbag\n")
    with pytest.raises(DataError, match="object_classes.txt"):
        load_action_genome(ag)


def test_allows_python2_style_numpy_pickles(tmp_path):
    pb, ob = video("AAAAA", 3)
    root = write_ag(tmp_path / "ag", pb, ob)
    with open(root / "annotations" / "person_bbox.pkl", "wb") as f:
        pickle.dump(pb, f, protocol=2)
    assert load_action_genome(root).counts()["train"]["frames"] == 3
    assert isinstance(person()["bbox"], np.ndarray)


def test_missing_annotations_folder(tmp_path: Path):
    with pytest.raises(DataError, match="no annotations/ folder"):
        load_action_genome(tmp_path)
