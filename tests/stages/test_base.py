"""Fingerprints, reuse, atomicity and locking of the stage framework."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from scenellm.config.schema import Params
from scenellm.project import Project
from scenellm.stages.base import SUCCESS, StageSpec, fingerprint, run_stage, tree_hash

SPEC = StageSpec("demo", sections=("vqvae",), module="scenellm.stages.base")
DOWN = StageSpec("down", sections=("lora",), upstream=("demo",), module="scenellm.stages.base")


def body(calls):
    def run(ctx):
        calls.append(ctx.fingerprint)
        (ctx.workdir / "out.txt").write_text(str(ctx.params.vqvae.codebook_size))
        return {"k": ctx.params.vqvae.codebook_size}
    return run


def go(spec, params, project, calls, inputs=None, version="v1", verify=False):
    return run_stage(spec, body(calls), params, project, Path("."), version, inputs or {},
                     verify=verify)


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


RESUMABLE = StageSpec("demo", sections=("vqvae",), module="scenellm.stages.base",
                      resumable=True)


def crash(ctx):
    (ctx.workdir / "half.txt").write_text("half")
    raise RuntimeError("killed")


def test_failed_resumable_body_keeps_its_partial_for_the_next_run(tmp_path):
    project = Project(tmp_path)
    with pytest.raises(RuntimeError):
        run_stage(RESUMABLE, crash, Params(), project, Path("."), "v1", {})
    stage_dir = project.stage_dir("demo")
    assert not [p for p in stage_dir.iterdir() if (p / SUCCESS).exists()]
    assert [p.name for p in stage_dir.iterdir() if p.is_dir()][0].endswith(".partial")
    result = run_stage(RESUMABLE, body([]), Params(), project, Path("."), "v1", {})
    assert (result.path / "half.txt").exists() and (result.path / SUCCESS).exists()
    assert result.note == "resumed"


def test_failed_body_of_a_stage_that_cannot_resume_leaves_nothing(tmp_path):
    project = Project(tmp_path)
    with pytest.raises(RuntimeError):
        run_stage(SPEC, crash, Params(), project, Path("."), "v1", {})
    assert not [p for p in project.stage_dir("demo").iterdir() if p.is_dir()]


def test_stale_partials_of_dead_runs_are_removed_on_the_next_run(tmp_path):
    project = Project(tmp_path)
    stage_dir = project.stage_dir("demo")
    stale = stage_dir / "0123456789abcdef.partial"  # another fingerprint, its process gone
    stale.mkdir(parents=True)
    (stale / "half.txt").write_text("half")
    go(SPEC, Params(), project, [])
    assert not stale.exists()


def test_a_corrupted_output_is_recomputed_not_consumed(tmp_path, capsys):
    project, calls = Project(tmp_path), []
    first = go(SPEC, Params(), project, calls)
    (first.path / "out.txt").write_text("999")  # same size, new bytes
    again = go(SPEC, Params(), project, calls)
    assert not again.reused and len(calls) == 2
    assert again.note.startswith("recomputed: out.txt changed")
    assert (again.path / "out.txt").read_text() == "512"
    assert "recomputing it" in capsys.readouterr().err


@pytest.mark.parametrize("change", ["added", "missing"])
def test_an_added_or_missing_file_is_recomputed(tmp_path, change):
    project, calls = Project(tmp_path), []
    first = go(SPEC, Params(), project, calls)
    if change == "added":
        (first.path / "stray.txt").write_text("x")
    else:
        (first.path / "out.txt").unlink()
    again = go(SPEC, Params(), project, calls)
    assert not again.reused and change in again.note
    assert sorted(p.name for p in again.path.iterdir()) == [SUCCESS, "out.txt"]


def test_verify_hashes_a_file_whose_stat_was_put_back(tmp_path):
    """A change that restores size and mtime escapes the fast path (ctime and inode do
    not: the write below changes ctime) — and ``verify`` always hashes."""
    import os

    project, calls = Project(tmp_path), []
    first = go(SPEC, Params(), project, calls)
    target = first.path / "out.txt"
    st = target.stat()
    target.write_text("999")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert go(SPEC, Params(), project, calls).note.startswith("recomputed")
    fine = go(SPEC, Params(), project, calls, verify=True)
    assert fine.reused and len(calls) == 2


def test_force_recomputes_an_intact_output(tmp_path):
    project, calls = Project(tmp_path), []
    go(SPEC, Params(), project, calls)
    forced = run_stage(SPEC, body(calls), Params(), project, Path("."), "v1", {}, force=True)
    assert not forced.reused and len(calls) == 2 and forced.note == "recomputed: forced"


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


def test_the_recorded_output_hash_is_the_tree_hash_of_the_folder(tmp_path):
    """Names whose string order differs from their path order ('a-c' < 'a/b' as strings,
    'a/b' first as paths) hash as io.tree_hash does."""
    project = Project(tmp_path)

    def nested(ctx):
        for rel in ("a/b.txt", "a-c.txt", "a/z/y.txt", "b.txt"):
            (ctx.workdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (ctx.workdir / rel).write_text(rel)
        return {}

    result = run_stage(SPEC, nested, Params(), project, Path("."), "v1", {})
    assert result.output_hash == tree_hash(result.path)
