"""The detections file: round trips, per-frame access, top-k, and a one-line error naming the
file and the first offending frame or row for each way a file can be wrong."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from scenellm.data import vocab
from scenellm.data.detections import Detections
from scenellm.data.detections_sttran import convert_sttran
from scenellm.errors import DataError, UnsafePickleError

KEYS = ["001YG.mp4/000093.png", "001YG.mp4/000100.png", "0A8CF.mp4/000012.png"]


def arrays(**changes) -> dict:
    """A valid file's arrays: 2 detections, none, 1 detection."""
    out = {
        "frame_keys": np.array(KEYS),
        "counts": np.array([2, 0, 1], dtype=np.int64),
        "boxes": np.array([[10, 20, 110, 220], [5.5, 6, 50, 60], [0, 0, 9, 9]], dtype=np.float64),
        "labels": np.array(["person", "cupglassbottle", "sofa/couch"]),
        "scores": np.array([0.9, 0.4, 1.0]),
    }
    return {**out, **changes}


def save(path, **changes):
    np.savez(path, **{k: v for k, v in arrays(**changes).items() if v is not None})
    return path


def test_round_trip_keeps_frames_boxes_ids_and_scores(tmp_path):
    read = Detections.read(save(tmp_path / "d.npz"))
    assert read.frames() == tuple(KEYS) and len(read) == 3
    first = read.for_frame(KEYS[0])
    assert first.boxes.dtype == np.float32 and first.boxes.shape == (2, 4)
    assert first.labels.tolist() == [vocab.PERSON_ID, vocab.object_id("cup/glass/bottle")]
    assert first.labels.dtype == np.int64 and first.scores.dtype == np.float32
    assert read.for_frame(KEYS[1]).boxes.shape == (0, 4)
    read.write(tmp_path / "again.npz")
    again = Detections.read(tmp_path / "again.npz")
    assert again.frames() == read.frames()
    for a, b in zip(again.per_frame, read.per_frame, strict=True):
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y) and x.dtype == y.dtype
    with np.load(tmp_path / "again.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays())
        assert npz["labels"].tolist() == ["person", "cup/glass/bottle", "sofa/couch"]


def test_write_replaces_atomically(tmp_path, monkeypatch):
    path = save(tmp_path / "d.npz")
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError):
        Detections.read(path).top(1).write(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["d.npz"]


def test_a_frame_the_file_lacks_is_empty_unless_required(tmp_path):
    dets = Detections.read(save(tmp_path / "d.npz"))
    assert len(dets.for_frame("ZZZ.mp4/000001.png").labels) == 0
    with pytest.raises(DataError, match=r"d\.npz: no detections for frame 'ZZZ.mp4/000001.png'"):
        dets.for_frame("ZZZ.mp4/000001.png", require=True)


def test_check_against_names_the_missing_frames(tmp_path):
    dets = Detections.read(save(tmp_path / "d.npz"))
    wanted = [KEYS[0], "ZZZ.mp4/000001.png", KEYS[2], "ZZZ.mp4/000002.png"]
    assert dets.missing_frames(wanted) == ["ZZZ.mp4/000001.png", "ZZZ.mp4/000002.png"]
    dets.check_against(KEYS)
    with pytest.raises(DataError, match=r"lacks 2 of the 4 frames .*'ZZZ.mp4/000001.png'"):
        dets.check_against(wanted)


def test_top_keeps_the_highest_scores_in_file_order_earlier_row_on_ties():
    dets = Detections.from_flat(
        KEYS[:1], [4], [[0, 0, 9, 9], [1, 1, 9, 9], [2, 2, 9, 9], [3, 3, 9, 9]],
        ["book", "bag", "bed", "box"], [0.2, 0.9, 0.5, 0.5])
    kept = dets.top(2).for_frame(KEYS[0])
    assert kept.scores.tolist() == pytest.approx([0.9, 0.5])
    assert kept.boxes[:, 0].tolist() == [1, 2]
    assert len(dets.top(0)) == 0 and len(dets.top(10)) == 4


def test_class_counts_use_pickle_names():
    dets = Detections.from_flat(KEYS[:1], [3], np.tile([0, 0, 9, 9], (3, 1)),
                                [1, 11, 11], [0.1, 0.2, 0.3])
    assert dets.class_counts() == {"person": 1, "cup/glass/bottle": 2}


@pytest.mark.parametrize(("changes", "message"), [
    ({"scores": None}, r"missing array\(s\) scores"),
    ({"counts": np.array([2.0, 0.0, 1.0])}, r"'counts' has dtype float64, expected integers"),
    ({"labels": np.array([1, 2, 3])}, r"'labels' has dtype int64, expected unicode"),
    ({"boxes": np.zeros((3, 5))}, r"'boxes' has shape \(3, 5\), expected \(3, 4\)"),
    ({"counts": np.array([2, 0])}, r"'counts' has shape \(2,\), expected \(3,\)"),
    ({"counts": np.array([2, 0, 2])}, r"counts sum to 4 but there are 3 detections"),
    ({"counts": np.array([4, -1, 0])}, r"frame '001YG.mp4/000100.png' has a negative count"),
    ({"boxes": np.array([[10, 20, 110, 220], [5, 6, 50, 60], [0, 0, np.inf, 9]])},
     r"frame '0A8CF.mp4/000012.png' detection 0 \(row 2\) has a non-finite box"),
    ({"boxes": np.array([[10, 20, 110, 220], [50, 6, 50, 60], [0, 0, 9, 9]])},
     r"frame '001YG.mp4/000093.png' detection 1 \(row 1\) has x2 <= x1"),
    ({"boxes": np.array([[10, 20, 110, 20], [5, 6, 50, 60], [0, 0, 9, 9]])},
     r"detection 0 \(row 0\) has y2 <= y1"),
    ({"scores": np.array([0.9, 1.5, 1.0])}, r"detection 1 \(row 1\) has a score outside \[0, 1\]"),
    ({"scores": np.array([0.9, 0.5, np.nan])}, r"\(row 2\) has a score outside"),
    ({"labels": np.array(["person", "spoon", "bed"])},
     r"detection 1 \(row 1\) has unknown class 'spoon'; use Action Genome names \('person'"),
    ({"frame_keys": np.array([KEYS[0], KEYS[2], KEYS[2]])},
     r"frame key '0A8CF.mp4/000012.png' appears 2 times"),
    ({"frame_keys": np.array([KEYS[0], "../x.png", KEYS[2]])}, r"frame key '\.\./x\.png'"),
])
def test_a_malformed_file_is_one_line_naming_file_and_first_offender(tmp_path, changes, message):
    path = save(tmp_path / "bad.npz", **changes)
    with pytest.raises(DataError, match=message) as caught:
        Detections.read(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_object_arrays_are_refused_unread(tmp_path):
    path = save(tmp_path / "obj.npz", labels=np.array(["person", "bed", "bag"], dtype=object))
    with pytest.raises(DataError, match="pickled object array, which is refused"):
        Detections.read(path)


@pytest.mark.parametrize(("content", "message"), [
    (None, "detections file not found"),
    (b"not a zip", "not a zip archive, not an .npz archive"),
    (b"PK\x03\x04 truncated", "not a readable .npz file"),
    ("npy", "a single .npy array, not an .npz archive"),
])
def test_unreadable_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "d.npz"
    if content == "npy":
        with open(path, "wb") as handle:
            np.save(handle, np.zeros(3))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        Detections.read(path)


# ---- the STTran layout --------------------------------------------------------------------

def sttran_pickle(path, **changes):
    video = {
        "frame_names": KEYS[:2],
        "boxes": np.array([[1, 0, 0, 9, 9], [0, 10, 20, 110, 220], [1, 5, 5, 30, 30]], np.float32),
        "labels": np.array([1, 1, 11]),
        "scores": np.array([0.5, 0.9, 0.7], np.float32),
    }
    other = {"frame_names": KEYS[2:], "boxes": np.zeros((0, 5), np.float32),
             "labels": np.zeros(0, np.int64), "scores": np.zeros(0, np.float32)}
    path.write_bytes(pickle.dumps({"001YG.mp4": {**video, **changes}, "0A8CF.mp4": other}))
    return path


def test_convert_sttran_groups_rows_by_frame_and_keeps_empty_frames(tmp_path):
    dets = convert_sttran(sttran_pickle(tmp_path / "det.pkl"))
    assert dets.frames() == tuple(KEYS)
    assert dets.for_frame(KEYS[0]).boxes.tolist() == [[10, 20, 110, 220]]
    second = dets.for_frame(KEYS[1])
    assert second.labels.tolist() == [1, 11] and second.scores.tolist() == pytest.approx([.5, .7])
    assert len(dets.for_frame(KEYS[2]).labels) == 0
    dets.write(tmp_path / "det.npz")
    assert Detections.read(tmp_path / "det.npz").frames() == tuple(KEYS)


@pytest.mark.parametrize(("changes", "message"), [
    ({"boxes": np.array([[2, 0, 0, 9, 9]] * 3, np.float32)}, r"row 0 has im_idx 2\.0, not a frame"),
    ({"boxes": np.zeros((3, 4))}, r"field 'boxes' has shape \(3, 4\), expected \(N, 5\)"),
    ({"labels": np.array([1, 0, 11])},
     r"frame '001YG.mp4/000093.png' detection 0 \(row 0\) has unknown class 'STTran id 0"),
    ({"labels": np.array([1.5, 1, 11])}, r"row 0 has label 1\.5, not an integer"),
    ({"scores": [0.5, "x", 0.7]}, r"field 'scores' is not a numeric array"),
    ({"frame_names": "001YG.mp4/000093.png"}, r"'frame_names' must be a list of frame keys"),
])
def test_convert_sttran_names_the_video_and_row_of_a_bad_entry(tmp_path, changes, message):
    with pytest.raises(DataError, match=message) as caught:
        convert_sttran(sttran_pickle(tmp_path / "det.pkl", **changes))
    assert "\n" not in str(caught.value)


def test_convert_sttran_refuses_pickled_code_and_tensors(tmp_path):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"v": Evil()}))
    with pytest.raises(UnsafePickleError, match="refuses to load global"):
        convert_sttran(tmp_path / "evil.pkl")
    sttran_pickle(tmp_path / "t.pkl", scores=torch.tensor([0.5, 0.9, 0.7]))
    with pytest.raises(UnsafePickleError, match="torch"):
        convert_sttran(tmp_path / "t.pkl")


def test_frame_truth_puts_the_person_first_with_sttran_ids():
    from scenellm.data.ag import FrameAnnotation, ObjectAnnotation
    from scenellm.data.detections import frame_truth

    cup = ObjectAnnotation(1, vocab.object_id("cup/glass/bottle"), (1.0, 2.0, 3.0, 4.0), (0,), (),
                           ())
    boxes, labels = frame_truth(FrameAnnotation(KEYS[0], ((5.0, 6.0, 7.0, 8.0),), (64, 48),
                                                (cup,)))
    assert boxes.tolist() == [[5, 6, 7, 8], [1, 2, 3, 4]] and labels.tolist() == [1, 11]
