"""The ``stage`` flow: run one pipeline stage (and what it needs) on a worker.

Deployed on the ``gpu`` work pool; the ``train`` flow routes its GPU stages here with
``run_deployment`` when ``orchestration.gpu_pool`` is set, then reuses the finished output
through its fingerprint. No shared folder is needed: a worker on another machine works in its
own clone (``project_root`` is used only where that folder exists), pulls the data version
from the DVC remote when ``data/`` is missing, fetches the upstream outputs it needs and
pushes the one it computes (``SCENELLM_DVC_REMOTE``, :mod:`scenellm.stages.shared_outputs`).
With ``join=True`` a worker helps a ``features`` run in progress on a store it shares
(:func:`scenellm.stages.pipeline.join_run`): run it once per extra worker.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from scenellm.config.load import load_params
from scenellm.project import Project
from scenellm.stages.pipeline import join_run, run_until


@flow(name="stage", log_prints=True)
def stage(name: str, overrides: list[str] | None = None, project_root: str | None = None,
          join: bool = False) -> dict:
    """Run (or reuse) stage ``name``; with ``join``, help its run in progress on the shared
    store instead (``scenellm stage features --join``)."""
    here = Path(project_root) if project_root and Path(project_root).is_dir() else None
    project = Project.discover(here)
    params = load_params(project.params_dir, overrides)
    if join:
        joined = join_run(name, params, project)
        print(f"{name}: wrote {joined['written']} shards ({joined['state']})")
        return joined
    results = run_until(name, params, project)
    result = results[name]
    print(f"{name}: {'reused' if result.reused else 'computed'} in {result.seconds:.1f}s "
          f"→ {result.path}")
    return {"stage": name, "fingerprint": result.fingerprint, "reused": result.reused,
            "path": str(result.path)}


if __name__ == "__main__":
    stage("features")
