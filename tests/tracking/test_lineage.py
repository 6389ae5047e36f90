"""Lineage tags: the real git state of a temp repo, stage fingerprints, a round trip."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from scenellm.stages.base import StageResult
from scenellm.tracking.lineage import (
    PACKAGES,
    git_state,
    lineage_tags,
    package_versions,
    parse_lineage,
)

MD5 = "0123456789abcdef0123456789abcdef.dir"


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    (root / ".gitignore").write_text(".scenellm/\n")
    (root / "code.py").write_text("x = 1\n")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "init")
    return root


def _head(root: Path) -> str:
    """HEAD read from git's files, independently of ``git rev-parse``."""
    return (root / ".git" / "refs" / "heads" / "main").read_text().strip()


def _results() -> dict[str, StageResult]:
    return {
        name: StageResult(
            name, f"fp-{name}", Path(f"/a/{name}"), reused, 1.5, f"oh-{name}", {"n": 3}
        )
        for name, reused in (("prepare", True), ("features", False))
    }


def test_git_state_follows_the_working_tree(repo: Path) -> None:
    assert git_state(repo) == {"commit": _head(repo), "dirty": False}
    (repo / ".scenellm").mkdir()
    (repo / ".scenellm" / "mlflow.db").write_text("ignored")
    assert git_state(repo)["dirty"] is False
    (repo / "new.py").write_text("y = 2\n")  # untracked, not ignored
    assert git_state(repo)["dirty"] is True
    (repo / "new.py").unlink()
    (repo / "code.py").write_text("x = 2\n")
    assert git_state(repo) == {"commit": _head(repo), "dirty": True}


def test_git_state_outside_a_repository(tmp_path: Path) -> None:
    assert git_state(tmp_path / "nowhere") == {"commit": None, "dirty": None}
    tags = lineage_tags(tmp_path, MD5, {})
    assert "scenellm.git_commit" not in tags and "scenellm.git_dirty" not in tags


def test_package_versions_match_installed_metadata() -> None:
    import mlflow
    import numpy

    versions = package_versions()
    assert set(versions) == set(PACKAGES)
    assert versions["mlflow"] == mlflow.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["great_expectations"] == metadata.version("great-expectations")


def test_lineage_tags_and_round_trip(repo: Path) -> None:
    (repo / "code.py").write_text("x = 3\n")
    tags = lineage_tags(repo, MD5, _results(), flow_run_id="flow-1", study="s1")
    assert tags["scenellm.git_commit"] == _head(repo)
    assert tags["scenellm.git_dirty"] == "true"
    assert tags["scenellm.data_md5"] == MD5
    assert tags["scenellm.stage.prepare.fingerprint"] == "fp-prepare"
    assert tags["scenellm.stage.features.output_hash"] == "oh-features"
    assert tags["scenellm.stage.prepare.reused"] == "true"
    assert tags["scenellm.prefect_flow_run_id"] == "flow-1"
    assert "scenellm.parent" not in tags
    assert all(isinstance(v, str) for v in tags.values())

    parsed = parse_lineage({**tags, "mlflow.runName": "x", "other": "y"})
    assert parsed == {
        "git_commit": _head(repo),
        "git_dirty": True,
        "data_md5": MD5,
        "stages": {
            "prepare": {"fingerprint": "fp-prepare", "output_hash": "oh-prepare", "reused": True},
            "features": {
                "fingerprint": "fp-features",
                "output_hash": "oh-features",
                "reused": False,
            },
        },
        "packages": package_versions(),
        "prefect_flow_run_id": "flow-1",
        "study": "s1",
        "parent": None,
    }


def test_lineage_tags_on_a_real_run(repo: Path, tracking_uri: str, unique_name: str) -> None:
    from scenellm.tracking.runs import Tracker

    tracker = Tracker(tracking_uri, unique_name)
    tags = lineage_tags(repo, MD5, _results(), parent="run-0")
    run_id = tracker.start_parent("pipeline", tags, {})
    stored = tracker.client.get_run(run_id).data.tags
    lineage = parse_lineage(stored)
    assert lineage["git_commit"] == _head(repo) and lineage["git_dirty"] is False
    assert lineage["data_md5"] == MD5 and lineage["parent"] == "run-0"
    assert {name: s["fingerprint"] for name, s in lineage["stages"].items()} == {
        "prepare": "fp-prepare",
        "features": "fp-features",
    }
    assert lineage == parse_lineage(tags)
