"""Lineage recorded on every MLflow run, as flat ``scenellm.*`` tags.

One run carries everything needed to reproduce it (DESIGN §3, "lineage is recorded, not
reconstructed"):

    scenellm.git_commit                     HEAD of the project's repository
    scenellm.git_dirty                      "true" if tracked or untracked, non-ignored files differ
    scenellm.data_md5                       DVC md5 of data/ (the data version)
    scenellm.stage.<name>.fingerprint       the stage's reuse key
    scenellm.stage.<name>.output_hash       sha256 tree hash of its output folder
    scenellm.stage.<name>.reused            "true" if the output was reused, not computed
    scenellm.stage.<name>.seconds           wall time (set on the stage's own child run)
    scenellm.stage.<name>.computed_in       a reused stage (no child run): the run that
                                            computed its output, or "untracked"
    scenellm.pkg.<package>                  installed version of each key package
    scenellm.prefect_flow_run_id / scenellm.study / scenellm.parent

:func:`parse_lineage` turns such tags back into a nested dict for auditors.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol


class StageRecord(Protocol):
    """What tracking reads of a stage result (``scenellm.stages.base.StageRecord``)."""

    name: str
    fingerprint: str
    output_hash: str
    reused: bool
    seconds: float
    metrics: dict[str, Any]
    path: Path

PREFIX = "scenellm."
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "prefect",
    "mlflow",
    "optuna",
    "dvc",
    "great_expectations",
    "numpy",
    "pandas",
    "scenellm",
)
STAGE_FIELDS = ("fingerprint", "output_hash", "reused", "seconds", "computed_in")
OPTIONAL = ("prefect_flow_run_id", "study", "parent")


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(root: Path) -> dict[str, Any]:
    """``{"commit": sha | None, "dirty": bool | None}`` of the repository holding ``root``.

    Untracked files that git does not ignore count as dirty: a new, uncommitted source file
    changes what runs just as an edit does. Both are None outside a repository (or without
    git); ``commit`` is None in a repository without commits.
    """
    status = _git(root, "status", "--porcelain")
    if status is None:
        return {"commit": None, "dirty": None}
    head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    return {"commit": head.strip() if head else None, "dirty": bool(status.strip())}


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (read from metadata, nothing is imported)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not-installed"
    return versions


def _flag(value: bool) -> str:
    return "true" if value else "false"


def stage_tags(result: StageRecord, seconds: bool = False) -> dict[str, str]:
    """The ``scenellm.stage.<name>.*`` tags of one stage result."""
    key = f"{PREFIX}stage.{result.name}."
    tags = {
        key + "fingerprint": result.fingerprint,
        key + "output_hash": result.output_hash,
        key + "reused": _flag(result.reused),
    }
    if seconds:
        tags[key + "seconds"] = f"{result.seconds:.3f}"
    return tags


def lineage_tags(
    root: Path,
    data_version: str,
    results: dict[str, StageRecord],
    flow_run_id: str | None = None,
    study: str | None = None,
    parent: str | None = None,
) -> dict[str, str]:
    """All lineage tags of a pipeline run rooted at ``root`` (None values are left out)."""
    git = git_state(root)
    tags = {f"{PREFIX}data_md5": data_version}
    if git["commit"] is not None:
        tags[f"{PREFIX}git_commit"] = git["commit"]
    if git["dirty"] is not None:
        tags[f"{PREFIX}git_dirty"] = _flag(git["dirty"])
    for result in results.values():
        tags.update(stage_tags(result))
    tags.update({f"{PREFIX}pkg.{name}": v for name, v in package_versions().items()})
    for name, value in zip(OPTIONAL, (flow_run_id, study, parent), strict=True):
        if value is not None:
            tags[PREFIX + name] = value
    return tags


def parse_lineage(tags: dict[str, str]) -> dict[str, Any]:
    """Inverse of :func:`lineage_tags` (other tags are ignored)::

    {"git_commit": str | None, "git_dirty": bool | None, "data_md5": str | None,
     "stages": {name: {"fingerprint", "output_hash", "reused": bool, ["seconds": float],
                       ["computed_in": run id]}},
     "packages": {name: version}, "prefect_flow_run_id", "study", "parent": str | None}
    """
    out: dict[str, Any] = {
        "git_commit": None,
        "git_dirty": None,
        "data_md5": None,
        "stages": {},
        "packages": {},
        **dict.fromkeys(OPTIONAL),
    }
    for key, value in tags.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name == "git_dirty":
            out["git_dirty"] = value == "true"
        elif name in ("git_commit", "data_md5", *OPTIONAL):
            out[name] = value
        elif name.startswith("pkg."):
            out["packages"][name[len("pkg.") :]] = value
        elif name.startswith("stage.") and name.rsplit(".", 1)[-1] in STAGE_FIELDS:
            stage, field = name[len("stage.") :].rsplit(".", 1)
            parsed: Any = value
            if field == "reused":
                parsed = value == "true"
            elif field == "seconds":
                parsed = float(value)
            out["stages"].setdefault(stage, {})[field] = parsed
    return out
