"""The stage framework: fingerprints, atomic outputs, verified reuse, locking.

A stage is a pure function of its inputs. Its **fingerprint** is

    sha256(json{stage, data_version, params of the sections it reads,
                upstream fingerprints, code hash})

where the code hash covers the transitive closure of the ``scenellm`` modules the stage's
module imports, plus declared non-Python files (:mod:`scenellm.stages.code`). The output
lives in ``<artifacts>/stages/<name>/<fingerprint[:16]>/``. The stage body writes into
``<fingerprint[:16]>.partial/``; the runner writes ``_SUCCESS.json`` (the record, with the
output's content manifest, :mod:`scenellm.stages.manifest`) and then publishes the folder
in one rename. A folder without that record is never reused; one whose files no longer
match their manifest is recomputed, never consumed. A file lock per fingerprint makes
concurrent workers (threads, processes, study trials) compute each output once.

Failure and kills: a resumable stage (``resumable=True``: features, detect, vqvae,
finetune) keeps its ``.partial`` so the next run resumes it; any other stage's ``.partial`` is removed when
the body fails, and under the lock before the next attempt. ``killpoint`` marks the places
the crash-safety harness kills the process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scenellm import io
from scenellm.config.load import params_hash, section_digest
from scenellm.config.schema import Params
from scenellm.errors import UserError
from scenellm.faults import killpoint
from scenellm.memory import use_system_arrow_pool
from scenellm.project import Project
from scenellm.stages import manifest
from scenellm.stages.code import code_hash

SUCCESS = "_SUCCESS.json"


@dataclass(frozen=True)
class StageSpec:
    """What a stage reads: params sections, upstream stages, non-Python files (``extra``,
    relative to the package folder); its code is what its module imports."""

    name: str
    sections: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    reads_data: bool = True
    resumable: bool = False
    module: str | None = None  # entry module of the code closure; default the stage's own
    # params keys ("section.field") naming input files: their content joins the fingerprint
    files: tuple[str, ...] = ()

    @property
    def entry(self) -> str:
        return self.module or f"scenellm.stages.{self.name}"


@dataclass
class StageResult:
    name: str
    fingerprint: str
    path: Path
    reused: bool
    seconds: float
    output_hash: str
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # why it was computed: "", "resumed", "recomputed: <what differed>"

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


def fingerprint_inputs(spec: StageSpec, params: Params, data_version: str,
                       upstream: dict[str, str]) -> dict[str, Any]:
    """Everything the fingerprint covers, by name (what ``--dry-run`` compares)."""
    return {
        "stage": spec.name,
        "data_version": data_version if spec.reads_data else None,
        "params": section_digest(params, spec.sections),
        "upstream": {name: upstream[name] for name in spec.upstream},
        "code": code_hash(spec.entry, spec.extra),
        **({"files": input_files(spec, params)} if spec.files else {}),
    }


def input_files(spec: StageSpec, params: Params) -> dict[str, str | None]:
    """sha256 of each input file a stage's params name (None where the param is unset)."""
    out: dict[str, str | None] = {}
    for key in spec.files:
        section, field_name = key.split(".")
        value = getattr(getattr(params, section), field_name)
        if value is None:
            out[key] = None
            continue
        path = Path(value)
        if not path.is_file():
            raise UserError(f"{key}: {path} is not a file; the {spec.name} stage reads it.")
        out[key] = io.sha256_file(path)
    return out


def fingerprint(spec: StageSpec, params: Params, data_version: str,
                upstream: dict[str, str]) -> str:
    return params_hash(fingerprint_inputs(spec, params, data_version, upstream))


def read_record(final: Path) -> dict[str, Any] | None:
    try:
        return json.loads((final / SUCCESS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def load_result(spec: StageSpec, final: Path, seconds: float = 0.0) -> StageResult:
    record = json.loads((final / SUCCESS).read_text())
    return StageResult(spec.name, record["fingerprint"], final, True, seconds,
                       record["output_hash"], record.get("metrics", {}))


def intact(final: Path, full: bool = False, refresh: bool = True) -> str | None:
    """None when ``final`` holds a complete output whose files match its manifest, else
    why not. A full hash that confirms the content refreshes the fast-path stat."""
    record = read_record(final)
    if record is None:
        return "no complete output"
    problem, hashed = manifest.check(final, record.get("manifest"), SUCCESS, full)
    if problem is None and hashed and refresh:
        record["manifest"] = manifest.refresh_stat(final, record["manifest"])
        io.atomic_write_json(final / SUCCESS, record)
    return problem


def _clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale_partials(stage_dir: Path, keep: str) -> None:
    """Remove the ``.partial`` folders of other fingerprints of a non-resumable stage whose
    lock nobody holds (their process died)."""
    from filelock import FileLock, Timeout

    for partial in stage_dir.glob("*.partial"):
        prefix = partial.name.removesuffix(".partial")
        if prefix == keep:
            continue
        try:
            with FileLock(str(stage_dir / f"{prefix}.lock"), timeout=0):
                _clear(partial)
        except Timeout:
            continue


def run_stage(spec: StageSpec, body: StageBody, params: Params, project: Project,
              data_root: Path, data_version: str, inputs: dict[str, StageResult],
              log_metrics: Callable[[dict[str, float], int | None], None] | None = None,
              verify: bool = False, force: bool = False) -> StageResult:
    """Reuse the stage's intact output, or compute it atomically under a lock.

    ``verify`` hashes every file of a reused output (default: only files whose size,
    mtime, ctime or inode changed); ``force`` recomputes even an intact output.
    """
    from filelock import FileLock

    start = time.perf_counter()
    covered = fingerprint_inputs(spec, params, data_version,
                                 {k: v.fingerprint for k, v in inputs.items()})
    fp = params_hash(covered)
    stage_dir = project.stage_dir(spec.name)
    final = stage_dir / fp[:16]
    if not force and (final / SUCCESS).exists() and intact(final, verify) is None:
        return load_result(spec, final, time.perf_counter() - start)
    stage_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(stage_dir / f"{fp[:16]}.lock")):
        io.recover_dir(final)
        work = stage_dir / f"{fp[:16]}.partial"
        if not spec.resumable:
            remove_stale_partials(stage_dir, keep=fp[:16])
            _clear(work)
        note = "resumed" if work.exists() else ""
        if work.exists():
            io.remove_temps(work)  # half-written files of the killed run
        if (final / SUCCESS).exists():
            problem = "forced" if force else intact(final, verify)
            if problem is None:  # another worker finished it meanwhile
                return load_result(spec, final, time.perf_counter() - start)
            note = f"recomputed: {problem}"
            print(f"scenellm: {spec.name} output {final.name}: {problem}; recomputing it",
                  file=sys.stderr)
            record = read_record(final) or {}
            (final / SUCCESS).unlink()
            _clear(work)
            if spec.resumable:  # the body rebuilds what broke (features: only bad shards)
                manifest.prune(final, None if force else record.get("manifest"), SUCCESS)
                os.rename(final, work)
        _clear(final)  # an incomplete leftover
        work.mkdir(exist_ok=True)
        ctx = StageContext(spec, params, project, data_root, data_version, inputs, work, fp,
                           log_metrics or (lambda m, step=None: None))
        use_system_arrow_pool()  # freed Arrow buffers go back to the system (scenellm.memory)
        try:
            metrics = body(ctx) or {}
        except UserError:  # bad data or params: nothing of this run can be resumed
            _clear(work)
            raise
        except BaseException:
            if not spec.resumable:
                _clear(work)
            raise
        killpoint("stage.body_done")
        content = manifest.build(work, SUCCESS)
        output_hash = manifest.tree_digest(content)  # = tree_hash(work), each file read once
        record = {"stage": spec.name, "fingerprint": fp, "output_hash": output_hash,
                  "data_version": data_version, "upstream": {k: v.fingerprint
                                                             for k, v in inputs.items()},
                  "params": covered["params"], "code": covered["code"], "metrics": metrics,
                  "seconds": time.perf_counter() - start,
                  "computed_by": {"host": socket.gethostname(), "pid": os.getpid()},
                  "manifest": content}
        io.atomic_write_json(work / SUCCESS, record)
        killpoint("stage.record_written")
        io.publish_dir(work, final)
    return StageResult(spec.name, fp, final, False, time.perf_counter() - start, output_hash,
                       metrics, note)
