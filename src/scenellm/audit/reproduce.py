"""``--reproduce``: recompute the recorded metrics and compare every number.

- ``eval``: run the evaluate stage again on the *recorded* outputs of its upstream stages
  (found by their recorded fingerprints under ``<artifacts>/stages/``);
- ``full``: run the whole pipeline (:func:`~scenellm.stages.pipeline.run_until`) from the
  recorded params on the data folder, which must still hash to the recorded data version.

Both write into a scratch project home (a temporary folder, removed afterwards), so the
project's own stage outputs are neither reused for the recomputed stages nor touched.
The reference is the ``metrics.json`` the evaluate child run logged to MLflow (else the one
in the recorded output folder). Every number must be identical on CPU; on CUDA, within
:data:`GPU_TOLERANCE` (absolute; the metrics are recalls in [0, 1]), because CUDA kernels do
not fix their reduction order, so near-tied triplet scores can swap ranks.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scenellm.audit.checks import FAIL, NOT_CHECKABLE, PASS, Check
from scenellm.audit.data_checks import data_root
from scenellm.audit.recorded import read_artifact_json
from scenellm.audit.stage_checks import output_path
from scenellm.project import Project

MODES = ("eval", "full")
GPU_TOLERANCE = 0.01


@dataclass(frozen=True)
class ScratchProject(Project):
    """The project's params and data with its stage outputs under ``scratch``."""

    scratch: Path = Path(".")

    @property
    def home(self) -> Path:
        return self.scratch


@dataclass
class MetricRow:
    key: str
    recorded: Any
    reproduced: Any
    diff: float | None
    ok: bool


@dataclass
class Reproduction:
    mode: str
    status: str
    detail: str
    device: str | None = None
    tolerance: float | None = None
    rows: list[MetricRow] = field(default_factory=list)
    stages: dict[str, dict[str, bool]] = field(default_factory=dict)  # same fp / output?
    seconds: float = 0.0

    def check(self) -> Check:
        return Check(f"reproduce.{self.mode}", "reproduce", self.status, self.detail)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested dicts and lists: ``{"model.predcls.with.R@20": 0.4, ...}``."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix.rstrip("."): value}
    return {k: v for key, item in items for k, v in leaves(item, f"{prefix}{key}.").items()}


def compare(recorded: dict, reproduced: dict, tolerance: float) -> list[MetricRow]:
    """One row per leaf; numbers agree within ``tolerance`` (NaN equals NaN)."""
    a, b = leaves(recorded), leaves(reproduced)
    rows = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        if numbers and math.isnan(x) and math.isnan(y):
            rows.append(MetricRow(key, x, y, 0.0, True))
        elif numbers:
            diff = abs(x - y)
            rows.append(MetricRow(key, x, y, diff, diff <= tolerance))
        else:
            rows.append(MetricRow(key, x, y, None, x == y))
    return rows


def judge(rows: list[MetricRow], tolerance: float, device: str) -> tuple[str, str]:
    """``(status, detail)``; the detail names the largest difference."""
    bad = [r for r in rows if not r.ok]
    if not bad:
        within = "identical" if tolerance == 0 else f"within ±{tolerance:g}"
        return PASS, f"all {len(rows)} numbers of metrics.json are {within} on {device}"
    worst = max(bad, key=lambda r: -1 if r.diff is None else r.diff)
    return FAIL, (
        f"{len(bad)} of {len(rows)} numbers of metrics.json differ beyond {tolerance:g} on "
        f"{device}; e.g. {worst.key}: {worst.recorded!r} recorded, {worst.reproduced!r} "
        "reproduced"
    )


def recorded_metrics(client, rec, project: Project) -> dict | None:
    evaluate = rec.stages.get("evaluate")
    if evaluate is None:
        return None
    if evaluate.child_run_id and (
        found := read_artifact_json(client, evaluate.child_run_id, "metrics.json")
    ):
        return found
    path = output_path(project, "evaluate", evaluate.fingerprint) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def rerun_evaluate(rec, project: Project, scratch: Project, params) -> dict | str:
    """The evaluate stage on the recorded upstream outputs; a reason string if missing."""
    from scenellm.stages import evaluate
    from scenellm.stages.base import SUCCESS, load_result, run_stage
    from scenellm.stages.registry import stage_module

    inputs = {}
    for dep in evaluate.SPEC.upstream:
        stage = rec.stages.get(dep)
        path = output_path(project, dep, stage.fingerprint) if stage else None
        if path is None or not (path / SUCCESS).exists():
            return f"the recorded {dep} output {path} is missing"
        inputs[dep] = load_result(stage_module(dep).SPEC, path)
    root = data_root(rec, project, params) or project.root
    return {
        "evaluate": run_stage(
            evaluate.SPEC, evaluate.run, params, scratch, root, rec.data_md5, inputs
        )
    }


def rerun_pipeline(rec, project: Project, scratch: Project, params) -> dict | str:
    from scenellm.data.version import data_version
    from scenellm.stages.pipeline import run_until

    root = project.data_root(params.data.root)
    now = data_version(root, cache_dir=project.home) if root.is_dir() else None
    if now != rec.data_md5:
        return (
            f"data {root} is at version {now}, the run used {rec.data_md5}; check out the "
            "recorded data first (git checkout <commit> data.dvc && dvc checkout)"
        )
    return run_until("evaluate", params, scratch)


def reproduce(
    client, rec, project: Project, params, mode: str = "eval", tolerance: float | None = None
) -> Reproduction:

    start = time.perf_counter()
    if params is None:
        return Reproduction(mode, NOT_CHECKABLE, "the run's params do not resolve")
    reference = recorded_metrics(client, rec, project)
    if reference is None:
        return Reproduction(
            mode,
            NOT_CHECKABLE,
            "no recorded metrics.json (neither on the evaluate child run nor in its output folder)",
        )
    from scenellm.device import select_device

    device = select_device("auto").type  # the device the evaluate stage picks
    tol = tolerance if tolerance is not None else (0.0 if device == "cpu" else GPU_TOLERANCE)
    folder = Path(tempfile.mkdtemp(prefix="scenellm-audit-"))
    try:
        scratch = ScratchProject(project.root, folder)
        rerun = rerun_evaluate if mode == "eval" else rerun_pipeline
        try:
            results = rerun(rec, project, scratch, params)
        except Exception as exc:  # a crash on recorded inputs is a failed reproduction
            return Reproduction(
                mode,
                FAIL,
                f"re-running failed: {type(exc).__name__}: {exc}",
                device,
                tol,
                seconds=time.perf_counter() - start,
            )
        if isinstance(results, str):
            return Reproduction(mode, NOT_CHECKABLE, results, device, tol)
        reproduced = json.loads((results["evaluate"].path / "metrics.json").read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = compare(reference, reproduced, tol)
    stages = {
        name: {
            "fingerprint": r.fingerprint == rec.stages[name].fingerprint,
            "output_hash": r.output_hash == rec.stages[name].output_hash,
        }
        for name, r in results.items()
        if name in rec.stages
    }
    status, detail = judge(rows, tol, device)
    return Reproduction(
        mode, status, detail, device, tol, rows, stages, time.perf_counter() - start
    )
