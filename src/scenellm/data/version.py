"""The data version: DVC's md5 of a data directory, as ``dvc add`` would record it, over
what the loader reads.

- A tree without symbolic links: DVC's own hashing (:func:`dvc_md5`), equal to ``data.dvc``.
- A tree with links (inside the root; links that leave it are refused before hashing):
  DVC's hashing skips linked folders, yet the loader follows them, so the version is
  computed with links followed, in DVC's ``.dir`` format (md5 of the sorted JSON list of
  ``{"md5", "relpath"}``) — what ``dvc add`` records for the same tree with the links
  replaced by copies (:func:`followed_md5`, tested equal to :func:`dvc_md5` without links).
- :func:`data_version` memoises the result on a signature of every file the walk reaches
  (following links): relative path, size, mtime, ctime and inode. ctime changes on every
  write and cannot be set back, so an edit that keeps size and mtime still misses the memo.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from scenellm.errors import DataError
from scenellm.io import atomic_write_json


def dvc_md5(path: Path) -> str:
    """DVC 3 directory hash (``<md5>.dir``) of ``path``, computed with DVC's own hashing."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    if not path.is_dir():
        raise DataError(f"{path}: data directory not found.")
    odb = HashFileDB(MemoryFileSystem(), "memory://scenellm-odb")
    _, _, obj = build(odb, str(path.resolve()), LocalFileSystem(), "md5", dry_run=True)
    return obj.hash_info.value


def _walk(path: Path):
    """(relative path, absolute path) of every file under ``path``, links followed."""
    for folder, _, files in os.walk(path, followlinks=True):
        for name in files:
            full = os.path.join(folder, name)
            yield os.path.relpath(full, path), full


def _md5(file: str) -> str:
    digest = hashlib.md5()
    with open(file, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def followed_md5(path: Path) -> str:
    """DVC's ``.dir`` md5 of ``path`` with symbolic links followed (module docstring)."""
    if not path.is_dir():
        raise DataError(f"{path}: data directory not found.")
    entries = sorted(({"md5": _md5(full), "relpath": rel} for rel, full in _walk(path)),
                     key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def has_links(path: Path) -> bool:
    return any(os.path.islink(os.path.join(folder, name))
               for folder, dirs, files in os.walk(path) for name in dirs + files)


def _stat_signature(path: Path) -> str:
    entries = []
    for rel, full in _walk(path):
        st = os.stat(full)
        entries.append((rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    entries.sort()
    return json.dumps(entries)


def data_version(path: Path, cache_dir: Path | None = None) -> str:
    """The data version of ``path`` (module docstring), memoised under ``cache_dir``."""
    compute = followed_md5 if has_links(path) else dvc_md5
    if cache_dir is None:
        return compute(path)
    signature = hashlib.sha256(_stat_signature(path).encode()).hexdigest()
    cache = cache_dir / "data_versions.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    key = f"{path.resolve()}:{signature}"
    if key not in known:
        known[key] = compute(path)
        atomic_write_json(cache, known, indent=1)
    return known[key]


def recorded_md5(dvc_file: Path) -> str:
    """The md5 recorded for the single output of a ``.dvc`` file."""
    import yaml

    if not dvc_file.exists():
        raise DataError(f"{dvc_file}: not found; run `dvc add data` once to track the data.")
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or []
    if not outs or "md5" not in outs[0]:
        raise DataError(f"{dvc_file}: no 'outs[0].md5' entry.")
    return outs[0]["md5"]
