"""Fingerprints, reuse, atomicity and locking of the stage framework."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from scenellm.config.schema import Params
from scenellm.project import Project
from scenellm.stages.base import SUCCESS, StageSpec, fingerprint, run_stage, tree_hash

SPEC = StageSpec("demo", sections=("vqvae",), code=("stages/base.py",))
DOWN = StageSpec("down", sections=("lora",), upstream=("demo",), code=("stages/base.py",))


def body(calls):
    def run(ctx):
        calls.append(ctx.fingerprint)
        (ctx.workdir / "out.txt").write_text(str(ctx.params.vqvae.codebook_size))
        return {"k": ctx.params.vqvae.codebook_size}
    return run


def go(spec, params, project, calls, inputs=None, version="v1"):
    return run_stage(spec, body(calls), params, project, Path("."), version, inputs or {})


def test_fingerprint_reads_only_declared_sections():
    base = Params()
    fp = fingerprint(SPEC, base, "v1", {})
    other_section = base.model_copy(update={"lora": base.lora.model_copy(update={"rank": 2})})
    assert fingerprint(SPEC, other_section, "v1", {}) == fp
    changed = base.model_copy(update={"vqvae": base.vqvae.model_copy(
        update={"codebook_size": 64})})
    assert fingerprint(SPEC, changed, "v1", {}) != fp
    assert fingerprint(SPEC, base, "v2", {}) != fp


def test_second_run_reuses_and_upstream_change_propagates(tmp_path):
    project, calls = Project(tmp_path), []
    first = go(SPEC, Params(), project, calls)
    again = go(SPEC, Params(), project, calls)
    assert not first.reused and again.reused and len(calls) == 1
    assert again.output_hash == first.output_hash == tree_hash(first.path)
    assert json.loads((first.path / SUCCESS).read_text())["metrics"] == {"k": 512}
    down = go(DOWN, Params(), project, calls, {"demo": first})
    p64 = Params().model_copy(update={"vqvae": Params().vqvae.model_copy(
        update={"codebook_size": 64})})
    up64 = go(SPEC, p64, project, calls)
    down64 = go(DOWN, p64, project, calls, {"demo": up64})
    assert down64.fingerprint != down.fingerprint and not down64.reused


def test_failed_body_leaves_nothing_that_looks_complete(tmp_path):
    project = Project(tmp_path)

    def crash(ctx):
        (ctx.workdir / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(SPEC, crash, Params(), project, Path("."), "v1", {})
    stage_dir = project.stage_dir("demo")
    assert not [p for p in stage_dir.iterdir() if (p / SUCCESS).exists()]
    assert [p.name for p in stage_dir.iterdir() if p.is_dir()][0].endswith(".partial")
    calls = []
    result = go(SPEC, Params(), project, calls)  # resumes in the same partial folder
    assert (result.path / "half.txt").exists() and (result.path / SUCCESS).exists()


def test_concurrent_workers_compute_once(tmp_path):
    project, calls = Project(tmp_path), []
    barrier = threading.Barrier(4)

    def slow(ctx):
        calls.append(1)
        (ctx.workdir / "x").write_text("x")
        return {}

    results = []

    def worker():
        barrier.wait()
        results.append(run_stage(SPEC, slow, Params(), project, Path("."), "v1", {}))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(calls) == 1 and sum(not r.reused for r in results) == 1
