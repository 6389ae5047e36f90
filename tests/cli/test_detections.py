"""``scenellm detections convert|check``, in-process: summaries on good files, one line and
exit 2 on bad ones."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from scenellm.cli.main import app
from scenellm.data.detections import Detections

KEYS = ["001YG.mp4/000093.png", "001YG.mp4/000100.png"]


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def sttran_pickle(path, labels=(1, 11, 11)):
    video = {"frame_names": KEYS,
             "boxes": np.array([[0, 10, 20, 110, 220], [0, 5, 5, 30, 30], [0, 1, 1, 9, 9]],
                               np.float32),
             "labels": np.array(labels), "scores": np.array([0.9, 0.7, 0.2], np.float32)}
    path.write_bytes(pickle.dumps({"001YG.mp4": video}))
    return path


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "det.npz"
    Detections.from_flat(KEYS, [2, 0], [[10, 20, 110, 220], [5, 5, 30, 30]],
                         ["person", "cupglassbottle"], [0.9, 0.7]).write(path)
    return path


def test_convert_writes_the_npz_and_prints_frames_detections_classes(tmp_path):
    out = tmp_path / "det.npz"
    result = invoke("detections", "convert", sttran_pickle(tmp_path / "det.pkl"), out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 2 frames, 3 detections" in result.output
    assert "classes: cup/glass/bottle 2, person 1" in result.output
    assert Detections.read(out).frames() == tuple(KEYS)


def test_convert_keeps_an_existing_file_unless_forced(tmp_path, npz):
    src = sttran_pickle(tmp_path / "det.pkl")
    before = npz.read_bytes()
    result = invoke("detections", "convert", src, npz)
    assert result.exit_code == 2 and "file exists; pass --force" in result.output
    assert npz.read_bytes() == before
    assert invoke("detections", "convert", src, npz, "--force").exit_code == 0


def test_convert_of_a_bad_pickle_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "det.npz"
    result = invoke("detections", "convert", sttran_pickle(tmp_path / "p.pkl", (1, 0, 11)), out)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "unknown class 'STTran id 0" in result.output and not out.exists()


def test_check_prints_frames_per_frame_counts_and_classes(npz):
    result = invoke("detections", "check", npz)
    assert result.exit_code == 0, result.output
    assert f"{npz}: 2 frames, 2 detections" in result.output
    assert "per frame: mean 1.00, min 0, max 2; 1 frame(s) with none" in result.output
    assert "classes: person 1, cup/glass/bottle 1" in result.output


def test_check_of_a_malformed_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, frame_keys=np.array(KEYS), counts=np.array([1, 0]),
             boxes=np.array([[10.0, 20, 5, 220]]), labels=np.array(["person"]),
             scores=np.array([0.5]))
    result = invoke("detections", "check", path)
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith(f"error: {path}: frame '{KEYS[0]}' detection 0 (row 0) "
                                    "has x2 <= x1")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from scenellm.data.ag import load_action_genome
    from scenellm.data.synth import generate

    root = tmp_path_factory.mktemp("ag") / "ag"
    generate(root, seed=0, videos=4, frames=4, size=(64, 48))
    test = [f.key for v in load_action_genome(root).split("test").values() for f in v]
    return root, test


def test_check_with_data_reports_the_frames_the_file_lacks(tmp_path, dataset):
    root, test = dataset
    path = tmp_path / "det.npz"
    Detections.from_flat(test[1:], [1] * (len(test) - 1), [[0, 0, 9, 9]] * (len(test) - 1),
                         ["person"] * (len(test) - 1), [0.5] * (len(test) - 1)).write(path)
    result = invoke("detections", "check", path, "--data", root, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["dataset"]
    assert (shown["frames"], shown["missing"], shown["first_missing"]) == (len(test), 1, test[:1])
    text = invoke("detections", "check", path, "--data", root).output
    assert f"({'test'} split): {len(test)} frames, 1 missing from the file (first: {test[0]}" in text
    strict = invoke("detections", "check", path, "--data", root, "--strict")
    assert strict.exit_code == 2 and strict.output.count("\n") == 1
    assert f"lacks 1 of the {len(test)} frames" in strict.output


def test_check_refuses_an_unknown_split(npz):
    result = invoke("detections", "check", npz, "--split", "val")
    assert result.exit_code == 2 and "--split must be one of test, train, all" in result.output


def test_group_help_points_to_the_format():
    result = invoke("detections", "--help")
    assert result.exit_code == 0 and "docs/detections.md" in result.output
    assert "convert" in result.output and "check" in result.output
