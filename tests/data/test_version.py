"""The data version covers what the loader reads: links followed, no stale memo."""

from __future__ import annotations

import os
from pathlib import Path

from scenellm.data.version import data_version, dvc_md5, followed_md5


def tree(root: Path) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "person_bbox.pkl").write_bytes(bytes(range(256)) * 3)
    (root / "frames" / "v.mp4").mkdir(parents=True)
    (root / "frames" / "v.mp4" / "000001.png").write_bytes(b"\x89PNG" + b"x" * 100)
    (root / "frame_list.txt").write_text("v.mp4/000001.png\n")
    return root


def test_followed_md5_equals_dvcs_own_hash_without_links(tmp_path: Path):
    root = tree(tmp_path / "data")
    assert followed_md5(root) == dvc_md5(root)


def test_an_edit_behind_a_linked_folder_changes_the_version(tmp_path: Path):
    root = tree(tmp_path / "data")
    real = root / "store" / "annotations"
    real.parent.mkdir()
    os.rename(root / "annotations", real)
    (root / "annotations").symlink_to(real, target_is_directory=True)
    cache = tmp_path / "home"
    before = data_version(root, cache)
    assert before == followed_md5(root)
    (real / "person_bbox.pkl").write_bytes(b"edited")
    assert data_version(root, cache) != before
    # the followed hash is what DVC records for the same tree with the link made a copy
    copy = tree(tmp_path / "copy")
    (copy / "annotations" / "person_bbox.pkl").write_bytes(b"edited")
    (copy / "store" / "annotations").mkdir(parents=True)
    (copy / "store" / "annotations" / "person_bbox.pkl").write_bytes(b"edited")
    assert data_version(root, cache) == dvc_md5(copy)


def test_an_edit_that_keeps_size_and_mtime_changes_the_version(tmp_path: Path):
    root = tree(tmp_path / "data")
    cache = tmp_path / "home"
    before = data_version(root, cache)
    target = root / "frame_list.txt"
    st = target.stat()
    target.write_text("v.mp4/000002.png\n")  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    assert data_version(root, cache) != before == dvc_md5(tree(tmp_path / "again"))


def test_the_memo_is_used_when_nothing_changed(tmp_path: Path, monkeypatch):
    root = tree(tmp_path / "data")
    cache = tmp_path / "home"
    first = data_version(root, cache)
    monkeypatch.setattr("scenellm.data.version.dvc_md5",
                        lambda path: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert data_version(root, cache) == first
