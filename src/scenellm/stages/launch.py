"""Run a training stage's body on several processes with ``torchrun``.

The stage body (in the process that holds the stage's lock, tracks it in MLflow and will
publish its output) calls :func:`launch`; it writes the context to ``launch.json`` in the
stage's work folder and starts

    python -m torch.distributed.run --standalone --nproc-per-node N --max-restarts 0 \\
        -m scenellm.stages.launch WORKDIR

Each rank rebuilds the context (:func:`context`) and runs the stage module's ``train``;
rank 0 alone writes outputs, checkpoints, ``result.json`` and one line per epoch to
``epochs.jsonl``, which the launching process forwards to the stage's metrics logger as they
arrive (so an MLflow child run and a study's pruner see every epoch, and a prune stops the
workers). A rank that dies makes ``torchrun`` stop the others; the launcher then raises one
line, and the per-epoch checkpoint left in the work folder resumes the stage on the next
run, with any number of processes. The workers die with the launcher (``PR_SET_PDEATHSIG``
on Linux), so a killed run leaves no orphan writing into the folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scenellm import io
from scenellm.stages.base import StageContext, StageResult

LAUNCH = "launch.json"
EPOCHS = "epochs.jsonl"
RESULT = "result.json"
POLL_SECONDS = 0.5


class WorkersFailed(RuntimeError):
    """A rank of a multi-process stage exited non-zero; the work folder is kept."""


def launch(ctx: StageContext, nproc: int) -> dict[str, Any]:
    """Run ``ctx``'s stage on ``nproc`` processes; rank 0's summary metrics."""
    payload = {
        "stage": ctx.spec.name, "params": ctx.params.model_dump(mode="json"),
        "project": str(ctx.project.root), "data_root": str(ctx.data_root),
        "data_version": ctx.data_version, "workdir": str(ctx.workdir),
        "fingerprint": ctx.fingerprint,
        "inputs": {name: {"fingerprint": r.fingerprint, "path": str(r.path),
                          "output_hash": r.output_hash, "metrics": r.metrics}
                   for name, r in ctx.inputs.items()},
    }
    io.atomic_write_json(ctx.workdir / LAUNCH, payload)
    for leftover in (EPOCHS, RESULT):  # from a run that was killed
        (ctx.workdir / leftover).unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "--max-restarts=0",
               "-m", "scenellm.stages.launch", str(ctx.workdir)]
    process = subprocess.Popen(command, preexec_fn=die_with_parent, start_new_session=True)
    forwarded = 0
    try:
        while True:
            done = process.poll() is not None
            forwarded = forward_epochs(ctx, forwarded)
            if done:
                break
            time.sleep(POLL_SECONDS)
    except BaseException:  # a prune, Ctrl-C, a dead tracking store: stop every rank
        stop(process)
        raise
    if process.returncode != 0:
        raise WorkersFailed(
            f"{ctx.spec.name}: one of {nproc} training processes failed (torchrun exit code "
            f"{process.returncode}; its log is above); the last epoch's checkpoint is kept in "
            f"{ctx.workdir.name} and the next run resumes from it, with any number of "
            "processes")
    metrics = json.loads((ctx.workdir / RESULT).read_text())
    for name in (LAUNCH, EPOCHS, RESULT):  # launch plumbing, not the stage's output
        (ctx.workdir / name).unlink(missing_ok=True)
    return metrics


def forward_epochs(ctx: StageContext, forwarded: int) -> int:
    """Pass the complete lines of ``epochs.jsonl`` past the first ``forwarded`` to the
    stage's metrics logger; the new count."""
    path = ctx.workdir / EPOCHS
    if not path.exists():
        return forwarded
    lines = path.read_text().split("\n")[:-1]  # the last piece may be half-written
    for line in lines[forwarded:]:
        record = json.loads(line)
        ctx.log_metrics(record["metrics"], record["step"])
    return len(lines)


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the launcher's process group (torchrun and its workers), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def die_with_parent() -> None:
    """In the child before exec: receive SIGTERM when the launching process dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def adopt_checkpoint(ctx: StageContext, field: str, limit: int = 64) -> int | None:
    """Copy into ``ctx``'s empty work folder the checkpoint a killed run of the same stage
    left with another ``<section>.nproc`` (``field``, e.g. ``"finetune.nproc"``): its
    fingerprint differs only in that value. Returns the world size adopted, or None.

    A checkpoint holds the unwrapped model, the optimizer and the step count of a global
    batch, so it continues under any number of ranks. A folder whose lock is held (a run
    still writing it) is skipped."""
    import shutil

    from filelock import FileLock, Timeout

    from scenellm.stages.base import fingerprint

    if (ctx.workdir / "checkpoint").exists():
        return None
    section, name = field.split(".")
    current = getattr(getattr(ctx.params, section), name)
    upstream = {k: v.fingerprint for k, v in ctx.inputs.items()}
    stage_dir = ctx.workdir.parent
    for size in range(1, limit + 1):
        if size == current:
            continue
        params = ctx.params.model_copy(update={section: getattr(ctx.params, section)
                                               .model_copy(update={name: size})})
        prefix = fingerprint(ctx.spec, params, ctx.data_version, upstream)[:16]
        source = stage_dir / f"{prefix}.partial" / "checkpoint"
        if not (source / "train.pt").exists():
            continue
        try:
            with FileLock(str(stage_dir / f"{prefix}.lock"), timeout=0):
                with io.staged_dir(ctx.workdir / "checkpoint") as tmp:
                    shutil.copytree(source, tmp, dirs_exist_ok=True)
                return size
        except Timeout:
            continue
    return None


def context(workdir: Path) -> StageContext:
    """The launching process's context, rebuilt in a rank from ``launch.json``."""
    from scenellm.config.schema import Params
    from scenellm.distributed import world_from_env
    from scenellm.project import Project
    from scenellm.stages.registry import stage_module

    payload = json.loads((workdir / LAUNCH).read_text())
    inputs = {name: StageResult(name, i["fingerprint"], Path(i["path"]), True, 0.0,
                                i["output_hash"], i["metrics"])
              for name, i in payload["inputs"].items()}
    logger = epoch_logger(workdir) if world_from_env().is_main else (lambda m, step=None: None)
    return StageContext(stage_module(payload["stage"]).SPEC,
                        Params.model_validate(payload["params"]), Project(Path(payload["project"])),
                        Path(payload["data_root"]), payload["data_version"], inputs, workdir,
                        payload["fingerprint"], logger)


def epoch_logger(workdir: Path):
    def log(metrics: dict[str, float], step: int | None = None) -> None:
        with open(workdir / EPOCHS, "a") as handle:
            handle.write(json.dumps({"metrics": metrics, "step": step}) + "\n")
            handle.flush()
    return log


def main(argv: list[str]) -> None:
    """A rank: rebuild the context, run the stage's ``train``; rank 0 writes the summary."""
    from scenellm.distributed import leave, world_from_env
    from scenellm.stages.registry import stage_module

    ctx = context(Path(argv[0]))
    try:
        metrics = stage_module(ctx.spec.name).train(ctx)
    finally:
        leave()
    if world_from_env().is_main:
        io.atomic_write_json(ctx.workdir / RESULT, metrics)


if __name__ == "__main__":
    main(sys.argv[1:])
