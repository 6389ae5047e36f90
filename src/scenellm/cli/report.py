"""Terminal summaries of stage results."""

from __future__ import annotations

import json
from pathlib import Path

from scenellm.io import atomic_write_json
from scenellm.stages.base import StageResult
from scenellm.stages.publish import stage_metrics


def write_metrics(result: StageResult, path: Path) -> None:
    """Flat numeric metrics of a stage, for ``dvc metrics show``."""
    atomic_write_json(path, stage_metrics(result))


def write_history(result: StageResult, path: Path) -> None:
    """A training stage's per-epoch history as ``[{"epoch": i, ...}]`` (``dvc plots``)."""
    from scenellm.stages.dvc import history_records

    atomic_write_json(path, history_records(result.path, result.name) or [])


def print_plan(planned, as_json: bool) -> None:
    """The ``--dry-run`` table: stage, action, fingerprint, why."""
    if as_json:
        print(json.dumps([p.to_dict() for p in planned], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="plan (nothing was run)")
    for column in ("stage", "action", "fingerprint", "why"):
        table.add_column(column, overflow="fold")
    colour = {"reuse": "dim", "compute": "green", "resume": "yellow", "recompute": "red",
              "fetch": "cyan"}
    for p in planned:
        table.add_row(p.name, f"[{colour[p.action]}]{p.action}[/]", p.fingerprint[:16],
                      p.reason)
    Console().print(table)


def print_stage_results(results: dict[str, StageResult], target: str, as_json: bool) -> None:
    if as_json:
        res = results[target]
        units = res.metrics.get("shards", 1)
        payload = {"stage": target,
                   "computed": 0 if res.reused else res.metrics.get("computed", 1),
                   "reused": units if res.reused else res.metrics.get("reused", 0),
                   "seconds": round(res.seconds, 3), "output": str(res.path),
                   "fingerprint": res.fingerprint, "metrics": res.metrics, "note": res.note,
                   "stages": {k: {"reused": v.reused, "seconds": round(v.seconds, 3),
                                  "note": v.note} for k, v in results.items()}}
        print(json.dumps(payload, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="stages")
    for column in ("stage", "status", "seconds", "fingerprint", "output"):
        table.add_column(column, overflow="fold")
    for name, res in results.items():
        status = "reused" if res.reused else (res.note or "computed")
        table.add_row(name, status, f"{res.seconds:.1f}", res.fingerprint[:12], str(res.path))
    console = Console()
    console.print(table)
    report = results[target].path / "table.txt"
    if report.exists():
        console.print(report.read_text(), highlight=False)
        return
    metrics = {k: v for k, v in results[target].metrics.items() if not isinstance(v, dict)}
    if metrics:
        console.print(", ".join(f"{k}={v}" for k, v in metrics.items()))
