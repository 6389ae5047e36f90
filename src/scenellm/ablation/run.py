"""Run an ablation grid: each cell is the pipeline up to ``evaluate`` with the variant's
overrides and seed, under one MLflow parent run with a child run per cell. Shared stages
are reused by fingerprint (features and the VQ-VAE once for most rows), and a finished cell
is a reused output, so a killed ablation resumes where it stopped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenellm.ablation.grid import AblateConfig, Cell
from scenellm.project import Project


@dataclass
class CellResult:
    cell: Cell
    evaluate: Path  # the evaluate stage's output folder
    reused: dict[str, bool] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def per_video(self) -> dict:
        return json.loads((self.evaluate / "per_video.json").read_text())


def run_cell(project: Project, base_overrides: list[str], cell: Cell, tracker=None,
             parent: str | None = None) -> CellResult:
    """One cell, as a child run of ``parent`` when a tracker is given."""
    from scenellm.config.load import load_params
    from scenellm.stages.pipeline import run_until
    from scenellm.tracking.lineage import stage_tags

    params = load_params(project.params_dir, [*base_overrides, *cell.overrides])

    def body(run_id: str | None) -> CellResult:
        results = run_until("evaluate", params, project)
        out = CellResult(cell, results["evaluate"].path,
                         {k: r.reused for k, r in results.items()},
                         {**results["evaluate"].metrics,
                          **epoch_seconds(results["finetune"].path)})
        if run_id is not None:
            tracker.log_metrics(run_id, out.metrics)
            for result in results.values():
                tracker.set_tags(run_id, stage_tags(result, seconds=True))
        return out

    if tracker is None:
        return body(None)
    tags = {"scenellm.variant": cell.variant, "scenellm.seed": str(cell.seed),
            "scenellm.overrides": " ".join(cell.overrides)}
    with tracker.child_run(parent, cell.name, tags) as run_id:
        return body(run_id)


def epoch_seconds(finetune: Path) -> dict[str, float]:
    """Seconds per fine-tuning epoch: the stage's recorded wall time (its last attempt,
    setup included) over its epochs. Kept out of the stage's output, which stays
    bit-identical between runs."""
    from scenellm.stages.base import read_record

    record = read_record(finetune) or {}
    epochs = record.get("metrics", {}).get("epochs")
    return {"finetune_epoch_seconds": record["seconds"] / epochs} if epochs else {}


def run_grid(project: Project, config: AblateConfig, grid: str, cells: list[Cell],
             base_overrides: list[str], experiment: str, run_cell_fn=run_cell) -> dict:
    """Every cell under one MLflow parent run, then the report logged to it.
    ``run_cell_fn`` lets a Prefect flow wrap each cell in a task."""
    from scenellm.tracking.runs import Tracker

    tracker = Tracker(project.mlflow_tracking_uri, experiment)
    spec = {"grid": grid, "variants": config.grids[grid],
            "seeds": len({c.seed for c in cells}), "seed_key": config.seed_key,
            "overrides": base_overrides}
    from scenellm.progress import progress

    with tracker.parent_run(f"ablate-{grid}", {"scenellm.ablation": grid}, spec) as parent, \
            progress(f"ablate {grid}", len(cells), "cells") as bar:
        results = []
        for cell in cells:
            results.append(run_cell_fn(project, base_overrides, cell, tracker, parent))
            bar.update(advance=1, info=f"last: {cell.name}")
        report = write_report(project, grid, results, config.bootstrap_samples, tracker,
                              parent)
    return {"parent_run_id": parent, "cells": len(results),
            "reused_cells": sum(all(r.reused.values()) for r in results), **report}


def write_report(project: Project, grid: str, results: list[CellResult], samples: int,
                 tracker=None, parent: str | None = None) -> dict[str, Any]:
    """``table.md``, ``table.json`` and ``differences.png`` under
    ``<home>/reports/ablate-<grid>/`` (and on the MLflow parent run)."""
    from scenellm.ablation.table import build_table, plot_differences, render_markdown
    from scenellm.io import atomic_write_json, atomic_write_text

    table = build_table(results, samples)
    folder = project.home / "reports" / f"ablate-{grid}"
    markdown = render_markdown(table, grid)
    atomic_write_text(folder / "table.md", markdown)
    atomic_write_json(folder / "table.json", table)
    plot_differences(table, folder / "differences.png")
    paths = [folder / "table.md", folder / "table.json", folder / "differences.png"]
    if tracker is not None:
        tracker.log_artifacts(parent, paths)
    return {"folder": str(folder), "markdown": markdown, "table": table}
