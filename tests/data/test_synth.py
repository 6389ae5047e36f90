"""Synthetic AG generator: exact layout and value forms, determinism, safe pickles, atomic
writes."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth_checks import NUMPY_GLOBALS, NumpyOnlyUnpickler, annotations, load

from scenellm.data import vocab
from scenellm.data.synth import generate

SMALL = {"videos": 6, "frames": 8, "size": (80, 60)}
KEY = re.compile(r"^([0-9A-Z]{5})\.mp4/(\d{6})\.png$")
OBJECT_FIELDS = {
    "class",
    "bbox",
    "visible",
    "attention_relationship",
    "spatial_relationship",
    "contacting_relationship",
    "metadata",
}


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class Recorder(NumpyOnlyUnpickler):
    """The allow-list unpickler, noting every global the pickle asks for."""

    def __init__(self, handle) -> None:
        super().__init__(handle)
        self.requested: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str):
        self.requested.add((module, name))
        return super().find_class(module, name)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth") / "ag"
    return root, generate(root, seed=3, **SMALL)


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path, small):
    first = digests(small[0])
    generate(tmp_path / "again", seed=3, **SMALL)
    generate(tmp_path / "other", seed=4, **SMALL)
    assert len(first) == 6 + SMALL["videos"] * SMALL["frames"]  # + world/states.json
    assert digests(tmp_path / "again") == first
    other = digests(tmp_path / "other")
    assert (
        other["annotations/object_bbox_and_relationship.pkl"]
        != first["annotations/object_bbox_and_relationship.pkl"]
    )
    assert set(other.values()).isdisjoint(
        set(first.values())
        - {first["annotations/object_classes.txt"], first["annotations/relationship_classes.txt"]}
    )


def test_class_files_and_frame_list(small):
    ann = small[0] / "annotations"
    assert ann.joinpath("object_classes.txt").read_text().split("\n")[:-1] == list(
        vocab.RAW_OBJECT_NAMES
    )
    assert ann.joinpath("relationship_classes.txt").read_text().split("\n")[:-1] == list(
        vocab.RAW_PREDICATE_NAMES
    )
    person, objects = annotations(small[0])
    assert ann.joinpath("frame_list.txt").read_text().splitlines() == list(person)
    assert list(objects) == list(person)


def test_keys_frames_and_person_boxes(small):
    root, _ = small
    W, H = SMALL["size"]
    person, _ = annotations(root)
    parsed = [KEY.match(k) for k in person]
    assert all(parsed)
    videos = [m.group(1) for m in parsed]
    assert videos == sorted(videos) and len(set(videos)) == SMALL["videos"]
    for video in set(videos):
        numbers = [int(m.group(2)) for m in parsed if m.group(1) == video]
        assert all(b - a >= 2 for a, b in zip(numbers, numbers[1:], strict=False))
    for key, entry in person.items():
        assert set(entry) == {"bbox", "bbox_score", "bbox_size", "bbox_mode"}
        box, score = entry["bbox"], entry["bbox_score"]
        assert box.dtype == np.float32 and score.dtype == np.float32
        assert box.shape in ((1, 4), (0, 4)) and score.shape == (len(box),)
        assert entry["bbox_size"] == (W, H) and type(entry["bbox_size"][0]) is int
        assert entry["bbox_mode"] == "xyxy"
        for x0, y0, x1, y1 in box:
            assert 0 <= x0 < x1 <= W - 1 and 0 <= y0 < y1 <= H - 1
            assert float(x0).is_integer() and float(y1).is_integer()
        with Image.open(root / "frames" / key) as img:
            assert img.size == (W, H) and img.mode == "RGB"


def test_object_entries(small):
    W, H = SMALL["size"]
    _, objects = annotations(small[0])
    names = set(vocab.OBJECT_CLASSES) - {"person"}
    splits: dict[str, set[str]] = {}
    classes: dict[str, list[str]] = {}
    for key, entries in objects.items():
        video = key.split("/")[0]
        assert entries and classes.setdefault(video, [e["class"] for e in entries]) == [
            e["class"] for e in entries
        ]  # every object listed in every frame, same order
        for e in entries:
            assert set(e) == OBJECT_FIELDS and e["class"] in names
            assert e["metadata"] == {"tag": key[:-4], "set": e["metadata"]["set"]}
            splits.setdefault(video, set()).add(e["metadata"]["set"])
            assert type(e["visible"]) is bool
            if not e["visible"]:
                assert e["bbox"] is None and e["attention_relationship"] is None
                assert e["spatial_relationship"] is None and e["contacting_relationship"] is None
                continue
            x, y, w, h = e["bbox"]
            assert all(type(v) is float and v.is_integer() for v in e["bbox"])
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= W - 1 and y + h <= H - 1
            for kind, table in vocab.KINDS.items():
                labels = e[f"{kind}_relationship"]
                assert type(labels) is list and labels and set(labels) <= set(table)
    assert all(len(s) == 1 for s in splits.values())  # the split is per video
    assert {s for v in splits.values() for s in v} == {"train", "test"}


def test_pickles_hold_only_builtins_and_numpy(small):
    ann = small[0] / "annotations"
    for name in ("person_bbox.pkl", "object_bbox_and_relationship.pkl"):
        with open(ann / name, "rb") as handle:
            recorder = Recorder(handle)
            data = recorder.load()
        assert data and recorder.requested <= NUMPY_GLOBALS
        assert pickle.loads(ann.joinpath(name).read_bytes()).keys() == data.keys()
        assert ann.joinpath(name).read_bytes()[:2] == b"\x80\x04"  # protocol 4
    with pytest.raises(pickle.UnpicklingError, match="OrderedDict"):
        NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(OrderedDict(a=1)))).load()


def test_pngs_carry_no_variable_metadata(small):
    for path in sorted((small[0] / "frames").rglob("*.png"))[:5]:
        data, chunks, at = path.read_bytes(), [], 8
        while at < len(data):
            length, kind = struct.unpack(">I4s", data[at : at + 8])
            chunks.append(kind.decode())
            at += 12 + length
        assert set(chunks) == {"IHDR", "IDAT", "IEND"}


def test_summary_counts_match_the_files(small):
    root, summary = small
    person, objects = annotations(root)
    assert summary["videos"] == SMALL["videos"] and summary["frames"] == len(person)
    assert summary["objects"] == sum(len(v) for v in objects.values())
    assert summary["visible_objects"] == sum(e["visible"] for v in objects.values() for e in v)
    assert summary["frames_without_person"] == sum(len(p["bbox"]) == 0 for p in person.values())
    per_split = summary["splits"]
    assert per_split["train"]["frames"] + per_split["test"]["frames"] == len(person)
    assert per_split["train"]["videos"] >= 1 and per_split["test"]["videos"] >= 1


def test_refuses_a_non_empty_output_and_leaves_no_temp_folder(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="taken"):
        generate(taken, seed=0, videos=2, frames=2, size=(32, 32))
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]

    calls = []

    def stop_after_one(done: int, total: int) -> None:
        calls.append((done, total))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(
            tmp_path / "killed", seed=0, videos=3, frames=2, size=(32, 32), progress=stop_after_one
        )
    assert calls == [(1, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no half output

    empty = tmp_path / "empty"
    empty.mkdir()
    calls.clear()
    generate(empty, seed=0, videos=3, frames=2, size=(32, 32), progress=lambda *a: calls.append(a))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]
    assert load(empty / "annotations" / "person_bbox.pkl")


def test_a_writer_that_finishes_first_wins(tmp_path):
    out = tmp_path / "ag"

    def other_writer(done: int, total: int) -> None:
        if done == total:  # someone else completes the folder while we render
            out.mkdir()
            (out / "theirs.txt").write_text("done")

    with pytest.raises(FileExistsError, match="not an empty folder"):
        generate(out, seed=0, videos=2, frames=2, size=(32, 32), progress=other_writer)
    assert [p.name for p in tmp_path.iterdir()] == ["ag"]
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
