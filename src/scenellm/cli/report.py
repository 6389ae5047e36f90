"""Terminal summaries of stage results."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from scenellm.io import atomic_write_json, staged_dir
from scenellm.stages.base import StageResult


def publish_output(source: Path, target: Path) -> None:
    """Expose a stage output at a fixed path (hard links; copies across filesystems); the
    old folder stays until the new one is in place."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    with staged_dir(target) as tmp:
        shutil.copytree(source, tmp, copy_function=link, dirs_exist_ok=True)


def write_metrics(result: StageResult, path: Path) -> None:
    """Flat numeric metrics of a stage, for ``dvc metrics show``."""
    flat = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
    atomic_write_json(path, flat)


def print_stage_results(results: dict[str, StageResult], target: str, as_json: bool) -> None:
    if as_json:
        res = results[target]
        units = res.metrics.get("shards", 1)
        payload = {"stage": target,
                   "computed": 0 if res.reused else res.metrics.get("computed", 1),
                   "reused": units if res.reused else res.metrics.get("reused", 0),
                   "seconds": round(res.seconds, 3), "output": str(res.path),
                   "fingerprint": res.fingerprint, "metrics": res.metrics,
                   "stages": {k: {"reused": v.reused, "seconds": round(v.seconds, 3)}
                              for k, v in results.items()}}
        print(json.dumps(payload, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="stages")
    for column in ("stage", "status", "seconds", "fingerprint", "output"):
        table.add_column(column)
    for name, res in results.items():
        table.add_row(name, "reused" if res.reused else "computed", f"{res.seconds:.1f}",
                      res.fingerprint[:12], str(res.path))
    console = Console()
    console.print(table)
    report = results[target].path / "table.txt"
    if report.exists():
        console.print(report.read_text(), highlight=False)
        return
    metrics = {k: v for k, v in results[target].metrics.items() if not isinstance(v, dict)}
    if metrics:
        console.print(", ".join(f"{k}={v}" for k, v in metrics.items()))
