"""The data version: DVC's md5 of a data directory, as ``dvc add`` would record it."""

from __future__ import annotations

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


def _stat_signature(path: Path) -> str:
    entries = []
    for folder, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(folder, name))
            entries.append((os.path.relpath(os.path.join(folder, name), path), st.st_size,
                            st.st_mtime_ns))
    entries.sort()
    return json.dumps(entries)


def data_version(path: Path, cache_dir: Path | None = None) -> str:
    """:func:`dvc_md5`, memoised on the files' sizes and mtimes (like DVC's state db)."""
    if cache_dir is None:
        return dvc_md5(path)
    import hashlib

    signature = hashlib.sha256(_stat_signature(path).encode()).hexdigest()
    cache = cache_dir / "data_versions.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    key = f"{path.resolve()}:{signature}"
    if key not in known:
        known[key] = dvc_md5(path)
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
