"""A worker on another machine needs only the repository and the remote's URL: a separate
clone with no data/ and an empty store pulls the data version from the DVC remote, fetches
the upstream outputs its stage needs (verified against their manifests) and pushes the one it
computes, which the first project then fetches in turn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_project import make_project

from scenellm.config.load import load_params
from scenellm.data.dvc_remote import DvcRemote
from scenellm.data.synth import generate
from scenellm.data.version import data_version, recorded_md5
from scenellm.project import Project
from scenellm.stages.pipeline import run_until

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """A git + DVC repository: the tiny project with ``data/`` tracked by ``data.dvc``."""
    root = tmp_path_factory.mktemp("remote") / "origin"
    make_project(root, Path("data"))
    generate(root / "data", seed=5, videos=8, frames=5, size=(96, 72))
    for command in ([*GIT, "init", "-q"], [BIN / "dvc", "init", "-q"],
                    [BIN / "dvc", "add", "-q", "data"], [*GIT, "add", "-A"],
                    [*GIT, "commit", "-qm", "tiny project"]):
        subprocess.run(command, cwd=root, check=True, capture_output=True)
    return root


def environment(home: Path, remote: Path) -> dict[str, str]:
    return {**os.environ, "SCENELLM_HOME": str(home), "SCENELLM_DVC_REMOTE": str(remote)}


def scenellm(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "scenellm", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def clone(origin: Path, to: Path) -> Path:
    subprocess.run([*GIT, "clone", "-q", str(origin), str(to)], check=True, capture_output=True)
    assert not (to / "data").exists()
    return to


def record(home: Path, stage: str) -> dict:
    (found,) = (home / "artifacts" / "stages" / stage).glob("*/_SUCCESS.json")
    return json.loads(found.read_text())


def test_a_worker_clone_pulls_the_data_fetches_upstream_outputs_and_shares_its_own(
        origin, tmp_path, monkeypatch):
    remote, home = tmp_path / "remote", tmp_path / "origin-home"
    pushed = scenellm("data", "push", cwd=origin, env=environment(home, remote))
    assert pushed.returncode == 0 and "pushed to" in pushed.stdout, pushed.stderr
    first = scenellm("stage", "features", cwd=origin, env=environment(home, remote))
    assert first.returncode == 0, first.stderr[-3000:]

    worker = clone(origin, tmp_path / "worker")
    worker_home = tmp_path / "worker-home"
    run = scenellm("stage", "vqvae", cwd=worker, env=environment(worker_home, remote))
    assert run.returncode == 0, run.stderr[-3000:]

    assert data_version(worker / "data") == recorded_md5(worker / "data.dvc") \
        == recorded_md5(origin / "data.dvc")
    for stage in ("prepare", "features"):  # fetched, not recomputed
        fetched = record(worker_home, stage)
        assert fetched["computed_by"] == record(home, stage)["computed_by"], stage
        assert fetched["fetched_from"] == str(remote)
    assert not (worker_home / "artifacts" / "stages" / "detect").exists()  # not upstream
    computed = record(worker_home, "vqvae")
    assert "fetched_from" not in computed
    assert computed["computed_by"]["pid"] != record(home, "features")["computed_by"]["pid"]

    planned = scenellm("stage", "vqvae", "--dry-run", "--json", cwd=origin,
                       env=environment(home, remote))
    assert planned.returncode == 0, planned.stderr[-3000:]
    actions = {p["stage"]: p["action"] for p in json.loads(planned.stdout)}
    assert actions == {"prepare": "reuse", "features": "reuse", "vqvae": "fetch"}
    alone = {k: v for k, v in environment(home, remote).items() if k != "SCENELLM_DVC_REMOTE"}
    unshared = scenellm("stage", "vqvae", "--dry-run", "--json", cwd=origin, env=alone)
    assert {p["stage"]: p["action"] for p in json.loads(unshared.stdout)}["vqvae"] == "compute"

    monkeypatch.setenv("SCENELLM_HOME", str(home))  # the first project gets it through the remote
    monkeypatch.setenv("SCENELLM_DVC_REMOTE", str(remote))
    results = run_until("vqvae", load_params(origin / "params"), Project(origin))
    assert results["vqvae"].reused
    assert record(home, "vqvae")["computed_by"] == computed["computed_by"]
    assert record(home, "vqvae")["output_hash"] == computed["output_hash"]


def test_a_remote_copy_that_differs_from_its_manifest_is_refused_and_recomputed(
        origin, tmp_path, monkeypatch):
    remote, home = tmp_path / "remote", tmp_path / "origin-home"
    monkeypatch.setenv("SCENELLM_HOME", str(home))
    monkeypatch.setenv("SCENELLM_DVC_REMOTE", str(remote))
    DvcRemote.of(Project(origin)).push(origin / "data.dvc")
    original = run_until("prepare", load_params(origin / "params"), Project(origin))["prepare"]
    (copy,) = (remote / "scenellm" / "stages" / "prepare").iterdir()
    victim = sorted(p for p in copy.rglob("*") if p.is_file() and p.name != "_SUCCESS.json")[0]
    good = victim.read_bytes()
    victim.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))

    worker, worker_home = clone(origin, tmp_path / "worker"), tmp_path / "worker-home"
    run = scenellm("stage", "prepare", cwd=worker, env=environment(worker_home, remote))
    assert run.returncode == 0, run.stderr[-3000:]
    rel = victim.relative_to(copy).as_posix()
    assert f"refused: {rel} changed (sha256 differs from the manifest)" in run.stderr
    recomputed = record(worker_home, "prepare")
    assert "fetched_from" not in recomputed
    assert recomputed["computed_by"] != record(home, "prepare")["computed_by"]
    assert recomputed["output_hash"] == original.output_hash
    assert victim.read_bytes() == good  # the worker replaced the refused copy


def test_a_data_version_missing_from_the_remote_is_one_line_naming_the_remote(
        origin, tmp_path):
    worker = clone(origin, tmp_path / "worker")
    empty = tmp_path / "empty-remote"
    run = scenellm("stage", "prepare", cwd=worker, env=environment(tmp_path / "w", empty))
    assert run.returncode == 2
    md5 = recorded_md5(origin / "data.dvc")
    assert run.stderr.strip() == (
        f"error: data version {md5} (data.dvc) is not on DVC remote 'store' ({empty}); run "
        "`scenellm data push` where the data is, or set SCENELLM_DVC_REMOTE to the remote "
        "that holds it.")
    assert not (worker / "data").exists()
