"""The content manifest of a stage output: what reuse checks before it trusts a folder.

Recorded at completion, for every file but the success record itself:

    files[rel] = {"sha256", "size"}            what the output must contain
    stat[rel]  = [size, mtime_ns, ctime_ns, inode]   the fast path

:func:`check` compares the folder with the manifest: the same set of files, and each file
either with the recorded (size, mtime, ctime, inode) — any write, rename over, or
``touch`` changes one of them; ctime cannot be set back — or, when those differ or
``full=True``, with the recorded sha256. It returns None when the folder is intact, else one
line saying what differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from scenellm.io import sha256_file


def _files(root: Path, exclude: str) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).as_posix() != exclude)


def _stat(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def build(root: Path, exclude: str) -> dict[str, Any]:
    """``{"files": {rel: {"sha256", "size"}}, "stat": {rel: [...]}}`` of ``root``."""
    files, stat = {}, {}
    for rel in _files(root, exclude):
        stat[rel] = _stat(root / rel)
        files[rel] = {"sha256": sha256_file(root / rel), "size": stat[rel][0]}
    return {"files": files, "stat": stat}


def tree_digest(manifest: dict[str, Any]) -> str:
    """:func:`scenellm.io.tree_hash` of the folder the manifest describes, from the recorded
    file hashes (same order: by path), so finishing a stage hashes each file once."""
    import hashlib

    digest = hashlib.sha256()
    for rel in sorted(manifest["files"], key=Path):
        digest.update(f"{rel}\0{manifest['files'][rel]['sha256']}\n".encode())
    return digest.hexdigest()


def refresh_stat(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with the fast-path stat of files whose content was just verified."""
    return {**manifest, "stat": {rel: _stat(root / rel) for rel in manifest["files"]}}


def check(root: Path, manifest: dict[str, Any] | None, exclude: str,
          full: bool = False) -> tuple[str | None, bool]:
    """(None or the first difference, whether any file had to be hashed)."""
    if not manifest or "files" not in manifest:
        return "the output records no content manifest", False
    expected = manifest["files"]
    present = _files(root, exclude)
    missing = sorted(set(expected) - set(present))
    if missing:
        return f"{missing[0]} is missing", False
    added = sorted(set(present) - set(expected))
    if added:
        return f"{added[0]} was added", False
    hashed = False
    for rel in present:
        if not full and manifest.get("stat", {}).get(rel) == _stat(root / rel):
            continue
        hashed = True
        if _stat(root / rel)[0] != expected[rel]["size"] \
                or sha256_file(root / rel) != expected[rel]["sha256"]:
            return f"{rel} changed (sha256 differs from the manifest)", hashed
    return None, hashed


def prune(root: Path, manifest: dict[str, Any] | None, exclude: str) -> list[str]:
    """Delete every file of ``root`` that the manifest does not record with these bytes,
    so a resumable stage reopened for repair rebuilds exactly what broke; returns them."""
    expected = (manifest or {}).get("files", {})
    removed = []
    for rel in _files(root, exclude):
        entry = expected.get(rel)
        if entry is None or sha256_file(root / rel) != entry["sha256"]:
            (root / rel).unlink()
            removed.append(rel)
    return removed
