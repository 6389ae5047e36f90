"""The ``ablate`` flow: every (variant, seed) cell of a grid in ``params/ablate.yaml`` as a
task (the pipeline up to ``evaluate``, shared stages reused by fingerprint), one MLflow
parent run with a child per cell, then the paper-style table. All logic lives in
:mod:`scenellm.ablation`."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from scenellm.ablation.grid import cells, load_ablate
from scenellm.ablation.run import run_cell, run_grid
from scenellm.config.load import load_params
from scenellm.project import Project


@task(name="cell", cache_policy=NO_CACHE)
def cell_task(project, overrides, cell, tracker, parent):
    return run_cell(project, overrides, cell, tracker, parent)


@flow(name="ablate", log_prints=True)
def ablate(grid: str = "default", seeds: int | None = None,
           overrides: list[str] | None = None) -> dict:
    project = Project.discover()
    config = load_ablate(project.params_dir / "ablate.yaml")
    params = load_params(project.params_dir, overrides)
    todo = cells(config, grid, seeds)
    out = run_grid(project, config, grid, todo, list(overrides or []),
                   params.orchestration.experiment,
                   run_cell_fn=lambda *a: cell_task.with_options(name=a[2].name)(*a))
    create_markdown_artifact(out["markdown"], key=f"ablate-{grid}",
                             description="Ablation table: differences from the full model")
    return {k: v for k, v in out.items() if k != "table"}


if __name__ == "__main__":
    ablate()
