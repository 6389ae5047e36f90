"""Atomic writes and folder publishing: the old content survives until the new is in place."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from scenellm import io


def folder(path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def listing(path: Path) -> dict[str, str]:
    return {p.relative_to(path).as_posix(): p.read_text()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_sha256_file_equals_hashlib(tmp_path: Path):
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    (tmp_path / "f").write_bytes(data)
    assert io.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_tree_hash_depends_on_names_and_bytes_not_creation_order(tmp_path: Path):
    a = folder(tmp_path / "a", {"x.txt": "1", "sub/y.txt": "2"})
    b = folder(tmp_path / "b", {"sub/y.txt": "2", "x.txt": "1"})
    assert io.tree_hash(a) == io.tree_hash(b)
    (b / "x.txt").write_text("3")
    assert io.tree_hash(a) != io.tree_hash(b)
    c = folder(tmp_path / "c", {"z.txt": "1", "sub/y.txt": "2"})
    assert io.tree_hash(a) != io.tree_hash(c)
    folder(a, {"skip.json": "anything"})
    assert io.tree_hash(a, exclude=("skip.json",)) != io.tree_hash(a)
    assert io.tree_hash(a, exclude=("skip.json",)) == io.tree_hash(
        folder(tmp_path / "d", {"x.txt": "1", "sub/y.txt": "2"}))


def test_atomic_write_keeps_the_old_bytes_when_the_write_fails(tmp_path: Path, monkeypatch):
    target = tmp_path / "out.json"
    io.atomic_write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}'

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        io.atomic_write_text(target, "new")
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_publish_dir_deletes_the_old_folder_only_after_the_new_is_in_place(
        tmp_path: Path, monkeypatch, exchange: bool):
    dest = folder(tmp_path / "out", {"old.txt": "old"})
    new = folder(tmp_path / "new", {"new.txt": "new"})
    if not exchange:
        monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    real_rmtree = io.shutil.rmtree
    removed = []

    def checked_rmtree(path, *args, **kwargs):
        assert listing(dest) == {"new.txt": "new"}, "old output deleted before the new landed"
        removed.append(Path(path))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(io.shutil, "rmtree", checked_rmtree)
    io.publish_dir(new, dest)
    assert listing(dest) == {"new.txt": "new"}
    assert removed, "the old folder was never removed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_kill_between_the_two_renames_is_undone(tmp_path: Path, monkeypatch):
    """Without renameat2 the old folder is renamed aside first; a kill right after that
    leaves no ``dest``, and recovery puts the old folder back."""
    dest = folder(tmp_path / "out", {"old.txt": "old"})
    new = folder(tmp_path / "new", {"new.txt": "new"})
    monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    real_rename, calls = os.rename, []

    def killed_on_second(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after this runs
        real_rename(src, dst)

    monkeypatch.setattr(io.os, "rename", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        io.publish_dir(new, dest)
    monkeypatch.setattr(io.os, "rename", real_rename)
    assert not dest.exists()
    io.recover_dir(dest)
    assert listing(dest) == {"old.txt": "old"}
    io.publish_dir(new, dest)  # and publishing again now works
    assert listing(dest) == {"new.txt": "new"}


def test_staged_dir_publishes_on_success_and_leaves_nothing_on_failure(tmp_path: Path):
    dest = folder(tmp_path / "out", {"old.txt": "old"})
    with pytest.raises(RuntimeError), io.staged_dir(dest) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("stage failed")
    assert listing(dest) == {"old.txt": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with io.staged_dir(dest) as tmp:
        (tmp / "done.txt").write_text("done")
    assert listing(dest) == {"done.txt": "done"}
    assert oct(dest.stat().st_mode & 0o777) == oct(0o755)


def test_recover_dir_removes_temp_folders_a_kill_left(tmp_path: Path):
    dest = folder(tmp_path / "checkpoint", {"train.pt": "epoch 3"})
    stale = folder(tmp_path / ".checkpoint.abc123.tmp", {"train.pt": "epoch 4, half"})
    io.recover_dir(dest)
    assert not stale.exists()
    assert listing(dest) == {"train.pt": "epoch 3"}
