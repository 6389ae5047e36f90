"""Atomic file and folder writes, and content hashes: the one place the project does them.

- :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json`: a
  hidden temp file beside the target, fsync, ``os.replace``; a reader sees the old bytes or
  the new ones, never a prefix.
- :func:`publish_dir`: move a finished folder onto its final path. The old folder (if any)
  stays in place until the new one is there: on Linux both are swapped in one
  ``renameat2(RENAME_EXCHANGE)`` call; elsewhere the old folder is renamed aside first, and
  :func:`recover_dir` puts it back if a kill struck between the two renames.
- :func:`staged_dir`: ``with staged_dir(dest) as tmp:`` write into ``tmp``; published on
  success, removed on failure.
- :func:`sha256_file`, :func:`tree_hash`: content hashes of a file and of a folder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scenellm.faults import killpoint

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_hash(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over ``relative path \\0 file sha256`` of every file under ``root``, sorted by
    path; files whose relative path is in ``exclude`` are left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        digest.update(f"{rel}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a hidden temp file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        killpoint("atomic_write.before_replace")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """``obj`` as JSON with sorted keys (equal content → equal bytes)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True))


def _aside(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.old")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2``); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return done == 0


def recover_dir(dest: Path) -> None:
    """Undo a :func:`publish_dir` that a kill cut between its two renames, and remove the
    temp folders of :func:`staged_dir` calls for ``dest`` that a kill left behind (call it
    only where no other process writes ``dest``, e.g. under the stage lock)."""
    dest = Path(dest)
    for stale in dest.parent.glob(f".{dest.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    old = _aside(dest)
    if old.exists():
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, dest)


def publish_dir(src: Path, dest: Path) -> None:
    """Move folder ``src`` onto ``dest``, replacing any old ``dest`` only once ``src`` is in
    place (see the module docstring); ``src`` must be on the same filesystem."""
    src, dest = Path(src), Path(dest)
    old = _aside(dest)
    if old.exists() and not dest.exists():  # a kill between the two renames below
        os.rename(old, dest)
    if not dest.exists():
        os.rename(src, dest)
        return
    if _exchange(src, dest):  # src now holds the old folder
        killpoint("publish.exchanged")
        shutil.rmtree(src)
        return
    if old.exists():  # an aside copy left by a kill after a complete publish
        shutil.rmtree(old)
    os.rename(dest, old)
    killpoint("publish.aside")
    os.rename(src, dest)
    shutil.rmtree(old)


def remove_temps(root: Path) -> list[Path]:
    """Delete the temp files and folders (``.name.XXXX.tmp``) that writes under ``root``
    cut by a kill left behind; returns them."""
    found = sorted(Path(root).rglob(".*.tmp"), key=lambda p: -len(p.parts))
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


@contextmanager
def staged_dir(dest: Path, replace: bool = True) -> Iterator[Path]:
    """A fresh temp folder beside ``dest``, published onto it when the block succeeds and
    removed when it raises. With ``replace=False`` the block's folder lands only where
    ``dest`` is absent or an empty folder at that moment (else FileExistsError)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    tmp.chmod(0o755)  # mkdtemp's 0700 would follow the folder onto dest
    try:
        yield tmp
        if replace:
            publish_dir(tmp, dest)
        else:
            try:
                os.rename(tmp, dest)  # replaces an empty folder, refuses a full one
            except OSError as exc:
                raise FileExistsError(f"{dest}: already exists and is not an empty folder; "
                                      "remove it or choose another output folder.") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
