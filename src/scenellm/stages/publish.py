"""A stage output exposed at a fixed path (``outputs/NAME`` for DVC) and its flat metrics.

Files are hard-linked from the fingerprinted store (copied across filesystems); the success
record stays behind (it names the host and pid, which would make DVC see a new output on
every run). A folder that already links the same files is left alone, so that a no-op run
touches nothing (linking changes a file's ctime, which reuse checks).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from scenellm.io import staged_dir
from scenellm.stages.base import SUCCESS


def _same_files(source: Path, target: Path) -> bool:
    def listing(root: Path) -> dict[str, int]:
        return {p.relative_to(root).as_posix(): p.stat().st_ino for p in root.rglob("*")
                if p.is_file() and p.name != SUCCESS}

    return target.is_dir() and listing(source) == listing(target)


def publish_output(source: Path, target: Path) -> None:
    """Expose ``source`` (a stage output) at ``target``; the old folder stays until the new
    one is in place."""
    if _same_files(source, target):
        return

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    with staged_dir(target) as tmp:
        shutil.copytree(source, tmp, copy_function=link, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(SUCCESS))


TIMINGS = ("seconds", "per_second")


def stage_metrics(result) -> dict[str, Any]:
    """The flat numeric metrics of a stage result (for ``dvc metrics``), without timings:
    they differ from machine to machine, and DVC would see a new output on every run
    (MLflow keeps them)."""
    return {k: v for k, v in result.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
            and not k.endswith(TIMINGS)}
