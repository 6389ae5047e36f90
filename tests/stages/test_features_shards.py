"""Sharded features: with ``orchestration.feature_workers=2`` the stage maps its videos over
two worker threads as Prefect task runs, inside the ``train`` flow's kind of stage task and
from ``scenellm stage``, and writes the same bytes under the same fingerprint as the plain
loop; a kill in the middle of the map resumes to that same store.

The runs go without ``OMP_NUM_THREADS=1`` (set for the rest of the suite), so torch uses
every core in the plain loop: the store must not depend on the intra-op thread count."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tiny_project import make_project

from scenellm.config.load import load_params
from scenellm.data.synth import generate
from scenellm.faults import ENV
from scenellm.stages import features
from scenellm.stages.base import SUCCESS, fingerprint, tree_hash
from scenellm.stages.shards import CLAIMS, GroupRun, ShardClaims, peak_parallel, shard_groups

VIDEOS = 8
FLOW = textwrap.dedent("""
    import json, sys
    from prefect import flow, task
    from scenellm.cli.embedded_api import wait_for_embedded_api
    from scenellm.cli.run import prefect_environment
    from scenellm.config.load import load_params
    from scenellm.project import Project
    from scenellm.stages.pipeline import run_until

    project = Project.discover()
    prefect_environment(project)
    wait_for_embedded_api()

    @task(name="stage")
    def stage(name):
        params = load_params(project.params_dir, ["orchestration.feature_workers=2"])
        return str(run_until(name, params, project)[name].path)

    @flow(name="train")
    def train():
        return stage("features")

    print(json.dumps({"output": train()}))
""")


def stage_env() -> dict[str, str]:
    """The suite's environment with torch's default thread count and no Prefect server."""
    drop = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PREFECT_API_URL", ENV)
    return {k: v for k, v in os.environ.items() if k not in drop}


def stage_cmd(workers: int) -> list[str]:
    return [sys.executable, "-m", "scenellm.cli.main", "stage", "features", "--json",
            "--set", f"orchestration.feature_workers={workers}"]


def record(final: Path) -> dict:
    return json.loads((final / SUCCESS).read_text())


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """A tiny project and its features output from the plain loop (one worker)."""
    data = tmp_path_factory.mktemp("ag") / "data"
    generate(data, seed=5, videos=VIDEOS, frames=5, size=(96, 72))
    project = make_project(tmp_path_factory.mktemp("project"), data)
    out = subprocess.run(stage_cmd(1), cwd=project.root, env=stage_env(), capture_output=True,
                         text=True, check=True)
    final = Path(json.loads(out.stdout)["output"])
    assert record(final)["metrics"]["shard_task_runs"] == 0
    return project, final, record(final)


@pytest.mark.slow
def test_two_workers_in_a_flow_write_the_sequential_store_as_parallel_task_runs(sequential):
    project, final, expected = sequential
    shutil.rmtree(final)
    out = subprocess.run([sys.executable, "-c", FLOW], cwd=project.root, env=stage_env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1])["output"] == str(final)  # same fingerprint
    got = record(final)
    assert got["fingerprint"] == expected["fingerprint"]
    assert tree_hash(final) == expected["output_hash"]
    assert got["output_hash"] == expected["output_hash"]
    metrics = got["metrics"]
    assert metrics["computed"] == VIDEOS
    assert metrics["shard_task_runs"] == len(shard_groups(range(VIDEOS), 2))
    assert metrics["shard_peak_parallel"] == 2  # two task runs were running at once


@pytest.mark.slow
def test_a_kill_in_the_middle_of_the_map_resumes_to_the_sequential_store(sequential):
    """``scenellm stage`` (no flow): two workers, SIGKILL after the third shard is written."""
    project, final, expected = sequential
    shutil.rmtree(final, ignore_errors=True)
    killed = subprocess.run(stage_cmd(2), cwd=project.root, capture_output=True, text=True,
                            env={**stage_env(), ENV: "features.shard_written@3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-800:]
    journal = final.with_name(f"{final.name}.partial") / features.JOURNAL
    assert len(journal.read_text().splitlines()) == 2
    rerun = subprocess.run(stage_cmd(2), cwd=project.root, env=stage_env(),
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)["output"] == str(final)
    assert tree_hash(final) == expected["output_hash"]
    metrics = record(final)["metrics"]
    assert (metrics["reused"], metrics["computed"]) == (2, VIDEOS - 2)
    assert metrics["shard_task_runs"] > 0
    assert sorted(p.name for p in final.parent.iterdir() if not p.name.endswith(".lock")) \
        == [final.name]


def test_a_shard_has_the_same_bytes_on_any_intra_op_thread_count(tmp_path):
    """On CPU a matmul of 16 or more RoIs reduces in a thread-count-dependent order, so each
    shard is computed on one thread: the plain loop (all cores) and N workers agree."""
    import hashlib

    import torch

    from scenellm.data.ag import load_action_genome
    from scenellm.data.tables import build_tables
    from scenellm.device import intra_op_threads
    from scenellm.features.backbone import build_backbone

    generate(tmp_path / "data", seed=3, videos=1, frames=6, size=(160, 120))
    tables = build_tables(load_action_genome(tmp_path / "data"))
    torch.manual_seed(0)
    detector = build_backbone({"name": "small_cnn", "feature_dim": 256, "pooled_size": 7,
                               "seed": 0, "checkpoint": None}).eval()

    def digest(threads: int) -> str:
        with intra_op_threads(threads):
            tensors, _ = features.video_features(detector, tmp_path / "data", tables["frames"],
                                                 tables["objects"], torch.device("cpu"), 8)
        assert len(tensors["labels"]) >= 16  # enough RoIs in one batch to split the sum
        return hashlib.sha256(b"".join(tensors[k].numpy().tobytes()
                                       for k in sorted(tensors))).hexdigest()

    assert digest(2) == digest(1) == digest(4)


def test_the_worker_count_is_not_in_the_fingerprint(tmp_path):
    project = make_project(tmp_path / "project", tmp_path / "data")

    def features_fingerprint(*overrides: str) -> str:
        params = load_params(project.params_dir, list(overrides))
        return fingerprint(features.SPEC, params, "data-md5", {"prepare": "prepare-fp"})

    one = features_fingerprint("orchestration.feature_workers=1")
    assert features_fingerprint("orchestration.feature_workers=8") == one
    assert features_fingerprint("detector.seed=1") != one  # what the stage reads does count


@pytest.mark.parametrize(("items", "workers", "sizes"), [
    (8, 2, [1] * 8),
    (20, 2, [3] * 6 + [2]),
    (3, 4, [1, 1, 1]),
    (0, 2, []),
])
def test_shard_groups_cover_the_items_in_order(items, workers, sizes):
    names = [f"v{i:02d}" for i in range(items)]
    groups = shard_groups(names, workers)
    assert [len(g) for g in groups] == sizes
    assert [v for g in groups for v in g] == names


@pytest.mark.parametrize(("intervals", "peak"), [
    ([(0, 1), (1, 2)], 1),  # one ends as the next starts
    ([(0, 2), (1, 3)], 2),
    ([(0, 5), (1, 2), (3, 4)], 2),
    ([(0, 1)], 1),
])
def test_peak_parallel_counts_overlapping_group_runs(intervals, peak):
    assert peak_parallel([GroupRun(None, "t", a, b) for a, b in intervals]) == peak


def join_cmd(wait: float = 60) -> list[str]:
    return [sys.executable, "-m", "scenellm.cli.main", "stage", "features", "--join", "--json",
            "--wait", str(wait)]


@pytest.mark.slow
def test_a_helper_process_writes_the_planned_shards_and_the_run_merges_them(sequential):
    """A run killed as its first shard is written leaves its plan; a helper in another process
    (``--join``) writes every planned shard; the rerun finds them journaled, computes none
    and publishes the sequential store byte for byte."""
    project, final, expected = sequential
    shutil.rmtree(final, ignore_errors=True)
    killed = subprocess.run(stage_cmd(1), cwd=project.root, capture_output=True, text=True,
                            env={**stage_env(), ENV: "features.shard_written@1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-800:]
    helper = subprocess.run(join_cmd(), cwd=project.root, env=stage_env(),
                            capture_output=True, text=True)
    assert helper.returncode == 0, helper.stderr[-2000:]
    joined = json.loads(helper.stdout)
    assert (joined["written"], joined["fingerprint"]) == (VIDEOS, expected["fingerprint"])
    rerun = subprocess.run(stage_cmd(1), cwd=project.root, env=stage_env(),
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert tree_hash(final) == expected["output_hash"]
    metrics = record(final)["metrics"]
    assert (metrics["reused"], metrics["computed"]) == (VIDEOS, 0)
    assert not (final / "claims").exists() and not (final / "shards.plan.json").exists()


@pytest.mark.slow
def test_a_run_and_a_helper_at_once_write_each_shard_once_into_the_sequential_store(
        sequential):
    project, final, expected = sequential
    shutil.rmtree(final, ignore_errors=True)
    helper = subprocess.Popen(join_cmd(), cwd=project.root, env=stage_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = subprocess.run(stage_cmd(1), cwd=project.root, env=stage_env(),
                         capture_output=True, text=True)
    out, err = helper.communicate(timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert helper.returncode == 0, err[-2000:]
    assert tree_hash(final) == expected["output_hash"]
    metrics = record(final)["metrics"]
    written = json.loads(out)["written"]
    assert metrics["computed"] + written == VIDEOS  # no shard written twice
    assert metrics["shards_by_helpers"] == written


def test_a_helper_with_no_run_to_join_says_so(tmp_path):
    data = tmp_path / "data"
    generate(data, seed=5, videos=4, frames=3, size=(64, 48))
    project = make_project(tmp_path / "project", data)
    helper = subprocess.run(join_cmd(wait=0), cwd=project.root, env=stage_env(),
                            capture_output=True, text=True)
    assert helper.returncode == 0, helper.stderr[-2000:]
    assert json.loads(helper.stdout)["state"] == "no features run in progress"
    assert json.loads(helper.stdout)["written"] == 0
    wrong = subprocess.run([*join_cmd(wait=0)[:4], "vqvae", "--join"], cwd=project.root,
                           env=stage_env(), capture_output=True, text=True)
    assert wrong.returncode != 0
    assert "only features can be joined" in wrong.stderr


def test_a_helper_late_for_the_run_writes_nothing_again(tmp_path):
    """A helper reads the plan, then loads the detector; a run on few videos may have
    written them all and removed its claims by then, and is publishing. The helper must
    find the run over, not make a fresh claims folder without markers and rewrite every
    shard (seen in the run-and-helper test on a slow machine: 8 + 8 shards for 8)."""
    run = ShardClaims(tmp_path)
    wrote = []
    assert run.write_unclaimed(["a"], wrote.append) == 1
    run.mark_done("a")
    helper = ShardClaims(tmp_path, create=False)  # during the run: its markers count
    assert helper.write_unclaimed(["a", "b"], wrote.append) == 1 and wrote == ["a", "b"]
    run.remove()
    with pytest.raises(FileNotFoundError):
        ShardClaims(tmp_path, create=False)
    assert not (tmp_path / CLAIMS).exists()
