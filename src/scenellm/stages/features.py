"""``features``: train the detector backbone on object crops, then cache per-video RoI
features (objects and person–object unions) in a :class:`FeatureStore`.

Resumable: every written shard is journaled with its sha256 in ``journal.jsonl``; a rerun
after a kill recomputes only shards that are missing or whose bytes no longer match. The
journal is folded into ``manifest.json`` at the end, so an interrupted-then-resumed store is
byte-identical to an uninterrupted one.

Shard workers: with ``orchestration.feature_workers`` = N > 1, the detector is trained
first, here, then the videos still to write are mapped in groups over N threads, each group
a Prefect task run (:mod:`scenellm.stages.shards`). Workers write their shards atomically
and append to the journal under one lock; the manifest lists the videos in sorted order.
Each shard is computed on one intra-op thread (``video_features``): CPU float32 matmuls
reduce in a thread-count-dependent order, and a fixed count makes the store byte-identical
for any N and any number of cores.

Helpers in other processes (other workers of a pool sharing the store):
``scenellm stage features --join`` waits for this run's plan (``shards.plan.json``, written
once the detector is saved), then writes the planned shards nobody has claimed
(:class:`~scenellm.stages.shards.ShardClaims`: a lock per shard while it is written, a
marker once it is journaled). This run writes what is left, waits for the shards helpers
hold (and writes those a killed helper left), then merges every journal line into the
manifest and publishes as before.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from scenellm.faults import killpoint
from scenellm.io import atomic_write_bytes, atomic_write_text
from scenellm.stages.base import StageContext, StageSpec

SPEC = StageSpec(
    name="features",
    sections=("detector",),
    upstream=("prepare",),
    resumable=True,
)
JOURNAL = "journal.jsonl"
DETECTOR = "detector.safetensors"


def detector_config(ctx: StageContext) -> dict:
    p = ctx.params.detector
    return {"name": p.backbone, "feature_dim": p.feature_dim, "pooled_size": p.roi_size,
            "seed": p.seed, "checkpoint": p.checkpoint}


def load_journal(workdir: Path) -> dict[str, dict]:
    path = workdir / JOURNAL
    entries = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                entries[record["video_id"]] = record["entry"]
    elif (workdir / "manifest.json").exists():  # a complete store reopened for repair
        entries = json.loads((workdir / "manifest.json").read_text())["shards"]
    return entries


def append_journal(workdir: Path, video_id: str, entry: dict) -> None:
    with open(workdir / JOURNAL, "a") as handle:
        handle.write(json.dumps({"video_id": video_id, "entry": entry}, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def build_detector(ctx: StageContext, frames, objects, device):
    """The configured backbone; ``small_cnn`` is trained here on train-split crops."""
    import torch
    from safetensors.torch import load_file, save

    from scenellm.features.backbone import build_backbone
    from scenellm.features.frames import crop_batch_source

    p = ctx.params.detector
    config = detector_config(ctx)
    if p.backbone != "small_cnn":
        return build_backbone(config).to(device).eval(), {}
    model = build_backbone({**config, "checkpoint": None}).to(device)
    ckpt = ctx.workdir / DETECTOR
    if ckpt.exists():
        model.load_state_dict(load_file(ckpt, device=str(device)))
        return model.eval(), json.loads((ctx.workdir / "detector_history.json").read_text())
    source = crop_batch_source(ctx.data_root, frames, objects, split="train",
                               batch_size=p.batch_size, seed=p.seed)

    from scenellm.progress import figures, progress

    torch.manual_seed(p.seed)
    per_epoch = -(-int((frames["split"] == "train").sum()) // p.batch_size)  # ceil
    with progress("detector", p.epochs * per_epoch, "batches") as bar:
        bar.update(info=f"epoch 1/{p.epochs}")

        def counted(epoch: int):  # an epoch takes minutes: the bar moves per batch
            end = (epoch + 1) * per_epoch - 1  # the epoch's last step comes with its figures
            for batch in source(epoch):
                yield batch
                bar.update(min(bar.completed + 1, end))

        def report(record):
            ctx.log_metrics({f"detector_{k}": v for k, v in record.items() if k != "epoch"},
                            record["epoch"])
            done = record["epoch"] + 1
            bar.update(done * per_epoch, info=f"epoch {min(done + 1, p.epochs)}/{p.epochs} · "
                       f"last epoch {figures(record, ('loss', 'accuracy'))}")

        history = model.train_on_crops(counted, epochs=p.epochs, lr=p.lr, progress=report)
    atomic_write_text(ctx.workdir / "detector_history.json", json.dumps(history, indent=1))
    atomic_write_bytes(ckpt, save({k: v.contiguous().cpu() for k, v in model.state_dict().items()}))
    killpoint("features.detector_saved")
    return model.eval(), history


class Throughput:
    """The progress bar's count and frames/s, updated by the worker that wrote a shard."""

    def __init__(self, bar, done: int) -> None:
        self.bar, self.done = bar, done
        self.computed = self.frames = 0
        self.start = time.perf_counter()
        bar.update(done)

    def add(self, frames: int) -> None:
        self.computed += 1
        self.frames += frames
        elapsed = time.perf_counter() - self.start
        self.bar.update(self.done + self.computed,
                        info=f"{self.frames / elapsed if elapsed > 0 else 0:.1f} frames/s")


def video_features(detector, data_root: Path, frames, objects, device, batch_size: int):
    """:func:`scenellm.features.frames.video_shard` on one intra-op thread, so its bytes do
    not depend on the thread count (module docstring)."""
    import torch

    from scenellm.device import intra_op_threads
    from scenellm.features.frames import video_shard

    with intra_op_threads(1), torch.no_grad():
        return video_shard(detector, data_root, frames, objects, device, batch_size)


def shard_entry(sha: str, tensors: dict, meta: dict) -> dict:
    """A shard's manifest (and journal) record."""
    return {"sha256": sha, "num_objects": int(tensors["labels"].numel()),
            "num_pairs": int(tensors["pair_idx"].shape[0]),
            "num_frames": int(tensors["frame_index"].max()) + 1, "split": meta["split"]}


def run(ctx: StageContext) -> dict:
    from scenellm.data.tables import read_tables
    from scenellm.device import select_device
    from scenellm.features.store import FeatureStore
    from scenellm.progress import progress
    from scenellm.stages.shards import PLAN, ShardClaims, map_shards, peak_parallel

    start = time.perf_counter()
    p = ctx.params.detector
    device = select_device(p.device)
    (ctx.workdir / PLAN).unlink(missing_ok=True)  # helpers wait for this run's plan
    tables = read_tables(ctx.input_path("prepare"))
    frames, objects = tables["frames"], tables["objects"]
    detector, history = build_detector(ctx, frames, objects, device)

    store = FeatureStore(ctx.workdir)
    journal = load_journal(ctx.workdir)
    videos = sorted(frames["video_id"].unique())
    todo = [v for v in videos
            if not (v in journal and store.has_valid_shard(v, journal[v]["sha256"]))]
    claims = ShardClaims(ctx.workdir)
    claims.reset()
    atomic_write_text(ctx.workdir / PLAN, json.dumps({"videos": todo}))  # helpers may join
    # not in SPEC.sections: the worker count changes no byte of the output (the test
    # tests/stages/test_features_shards.py shows it), so it must not change the fingerprint
    workers = ctx.params.orchestration.feature_workers
    resumed = f"with {len(journal)} of {len(videos)} videos written" if journal else None
    with progress("features", len(videos), "videos", resumed=resumed) as bar:
        counter = Throughput(bar, done=len(videos) - len(todo))
        write = shard_writer(ctx, detector, frames, objects, device, claims, counter)
        runs = map_shards(lambda v: claims.write_unclaimed([v], write), todo, workers,
                          "features")
        claims.write_unclaimed(todo, write, wait=True)  # what helpers hold, or left undone
        journal.update(load_journal(ctx.workdir))  # the lines written since, helpers' too
        bar.update(len(videos))
    compute_seconds = time.perf_counter() - counter.start
    store.write_manifest(ctx.data_version, {k: v for k, v in detector_config(ctx).items()},
                         detector.feature_dim, {v: journal[v] for v in videos})
    killpoint("features.manifest_written")
    for name in (JOURNAL, PLAN):
        (ctx.workdir / name).unlink(missing_ok=True)
    claims.remove()
    return {
        "computed": counter.computed, "reused": len(videos) - len(todo), "shards": len(videos),
        "frames_computed": counter.frames,
        "frames_per_second": counter.frames / compute_seconds if compute_seconds > 0 else 0.0,
        "seconds": time.perf_counter() - start,
        "detector_train_accuracy": history[-1]["accuracy"] if history else None,
        "shard_workers": workers,
        "shard_task_runs": sum(r.task_run_id is not None for r in runs),
        "shard_peak_parallel": peak_parallel(runs),
        "shards_by_helpers": len(todo) - counter.computed,
    }


def shard_writer(ctx: StageContext, detector, frames, objects, device, claims, counter=None):
    """``write(video_id)``: the video's shard written atomically, then its journal line
    (under the claims' journal lock, shared with helper processes) and its done marker.
    Safe to call from several threads at once."""
    from scenellm.features.store import FeatureStore

    p = ctx.params.detector
    store = FeatureStore(ctx.workdir)
    frames_by_video = dict(tuple(frames.groupby("video_id")))
    objects_by_video = dict(tuple(objects.groupby("video_id")))
    lock = threading.Lock()  # one journal line and one bar update at a time in this process

    def write(video_id: str) -> None:
        tensors, meta = video_features(detector, ctx.data_root, frames_by_video[video_id],
                                       objects_by_video.get(video_id, objects.iloc[:0]),
                                       device, p.batch_size)
        sha = store.write_shard(video_id, tensors, meta)
        entry = shard_entry(sha, tensors, meta)
        with lock, claims.journal_lock():
            killpoint("features.shard_written")
            append_journal(ctx.workdir, video_id, entry)
            claims.mark_done(video_id)
            if counter is not None:
                counter.add(entry["num_frames"])

    return write


def join(ctx: StageContext, poll: float = 2.0, wait: float = 600.0) -> dict:
    """Help a features run in progress in ``ctx.workdir`` (its partial folder): once that
    run has trained its detector and written its plan, write the planned shards nobody has
    claimed, until none is left. Waits up to ``wait`` seconds for the plan; returns what
    this process wrote."""
    from scenellm.data.tables import read_tables
    from scenellm.device import select_device
    from scenellm.stages.shards import PLAN, ShardClaims

    deadline = time.monotonic() + wait
    while not (ctx.workdir / PLAN).exists():  # written once the detector is saved
        if time.monotonic() > deadline:
            return {"written": 0, "state": "no features run in progress"}
        time.sleep(poll)
    finished = {"written": 0, "state": "the run finished before this helper started"}
    trained = ctx.params.detector.backbone == "small_cnn"
    try:
        todo = json.loads((ctx.workdir / PLAN).read_text())["videos"]
        if trained and not (ctx.workdir / DETECTOR).exists():
            return finished  # never train here: the run's detector is the one to use
        tables = read_tables(ctx.input_path("prepare"))
        frames, objects = tables["frames"], tables["objects"]
        device = select_device(ctx.params.detector.device)
        detector, _ = build_detector(ctx, frames, objects, device)
        claims = ShardClaims(ctx.workdir, create=False)  # gone: the run has finished
    except FileNotFoundError:  # published (renamed) between two of the reads above
        return finished
    write = shard_writer(ctx, detector, frames, objects, device, claims)
    written = claims.write_unclaimed(todo, write)
    return {"written": written, "state": "nothing left to claim"}
