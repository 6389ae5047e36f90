"""The stage framework: fingerprints, atomic outputs, reuse, locking.

A stage is a pure function of its inputs. Its **fingerprint** is

    sha256(json{stage, data_version, params of the sections it reads,
                upstream fingerprints, sha256 of its code files})

and its output lives in ``<artifacts>/stages/<name>/<fingerprint[:16]>/``. The stage body
writes into ``<fingerprint[:16]>.partial/`` (kept across kills so long stages can resume)
and the runner renames it into place only after writing ``_SUCCESS.json``; a directory
without that marker is never reused. A file lock per fingerprint makes concurrent workers
(threads, processes, study trials) compute each output once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scenellm import io
from scenellm.config.load import params_hash, section_digest
from scenellm.config.schema import Params
from scenellm.project import Project

SUCCESS = "_SUCCESS.json"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class StageSpec:
    """What a stage reads: params sections, upstream stages and its code files."""

    name: str
    sections: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    code: tuple[str, ...] = ()  # paths relative to src/scenellm (files or folders)
    reads_data: bool = True


@dataclass
class StageResult:
    name: str
    fingerprint: str
    path: Path
    reused: bool
    seconds: float
    output_hash: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


@dataclass
class StageContext:
    """What a stage body receives; it writes only under ``workdir``."""

    spec: StageSpec
    params: Params
    project: Project
    data_root: Path
    data_version: str
    inputs: dict[str, StageResult]
    workdir: Path
    fingerprint: str
    log_metrics: Callable[[dict[str, float], int | None], None] = lambda m, step=None: None

    def input_path(self, stage: str) -> Path:
        return self.inputs[stage].path


StageBody = Callable[[StageContext], dict[str, Any]]


def tree_hash(root: Path, exclude: tuple[str, ...] = (SUCCESS,)) -> str:
    """:func:`scenellm.io.tree_hash` of a stage output, its success record left out."""
    return io.tree_hash(root, exclude)


def code_hash(paths: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(paths):
        target = PACKAGE_ROOT / rel
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for path in files:
            digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(spec: StageSpec, params: Params, data_version: str,
                upstream: dict[str, str]) -> str:
    payload = {
        "stage": spec.name,
        "data_version": data_version if spec.reads_data else None,
        "params": section_digest(params, spec.sections),
        "upstream": {name: upstream[name] for name in spec.upstream},
        "code": code_hash(spec.code),
    }
    return params_hash(payload)


def load_result(spec: StageSpec, final: Path, seconds: float = 0.0) -> StageResult:
    record = json.loads((final / SUCCESS).read_text())
    return StageResult(spec.name, record["fingerprint"], final, True, seconds,
                       record["output_hash"], record.get("metrics", {}))


def run_stage(spec: StageSpec, body: StageBody, params: Params, project: Project,
              data_root: Path, data_version: str, inputs: dict[str, StageResult],
              log_metrics: Callable[[dict[str, float], int | None], None] | None = None,
              verify: Callable[[Path], bool] | None = None) -> StageResult:
    """Reuse the stage's complete output or compute it atomically under a lock.

    ``verify(path)`` (optional, cheap) re-checks a complete output before reuse; when it
    fails the output is reopened as the partial folder so the body repairs only what broke.
    """
    from filelock import FileLock

    start = time.perf_counter()
    fp = fingerprint(spec, params, data_version, {k: v.fingerprint for k, v in inputs.items()})
    stage_dir = project.stage_dir(spec.name)
    final = stage_dir / fp[:16]
    if (final / SUCCESS).exists() and (verify is None or verify(final)):
        return load_result(spec, final, time.perf_counter() - start)
    stage_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(stage_dir / f"{fp[:16]}.lock")):
        work = stage_dir / f"{fp[:16]}.partial"
        if (final / SUCCESS).exists():
            if verify is None or verify(final):  # another worker finished it meanwhile
                return load_result(spec, final, time.perf_counter() - start)
            (final / SUCCESS).unlink()
            shutil.rmtree(work, ignore_errors=True)
            os.rename(final, work)
        work.mkdir(exist_ok=True)
        ctx = StageContext(spec, params, project, data_root, data_version, inputs, work, fp,
                           log_metrics or (lambda m, step=None: None))
        metrics = body(ctx) or {}
        output_hash = tree_hash(work)
        record = {"stage": spec.name, "fingerprint": fp, "output_hash": output_hash,
                  "data_version": data_version, "upstream": {k: v.fingerprint
                                                             for k, v in inputs.items()},
                  "params": section_digest(params, spec.sections), "metrics": metrics,
                  "seconds": time.perf_counter() - start,
                  "computed_by": {"host": socket.gethostname(), "pid": os.getpid()}}
        io.atomic_write_json(work / SUCCESS, record)
        io.publish_dir(work, final)  # an incomplete leftover at final is replaced
    return StageResult(spec.name, fp, final, False, time.perf_counter() - start, output_hash,
                       metrics)


def discard_partial(ctx: StageContext) -> None:
    """Remove everything a failed non-resumable stage wrote."""
    shutil.rmtree(ctx.workdir, ignore_errors=True)
