"""The ``tune`` flow: open (or join) an Optuna study, work on it here and in K-1 extra
worker processes until it holds N finished trials, then write the study report.

Trials run the pipeline up to ``finetune`` with stage reuse by fingerprint, so features
are computed once and each VQ-VAE codebook size is trained once, whichever worker needs
them first. All logic lives in :mod:`scenellm.search`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from scenellm.project import Project
from scenellm.search.optimize import optimize
from scenellm.search.report import render_markdown, study_report
from scenellm.search.study import TuneRequest, open_study
from scenellm.search.workers import WorkerPool


@task(name="open-study", cache_policy=NO_CACHE)
def open_study_task(request: TuneRequest):
    return open_study(request)


@task(name="optimize", cache_policy=NO_CACHE)
def optimize_task(session, trials: int) -> dict:
    return optimize(session, trials)


@task(name="report", cache_policy=NO_CACHE)
def report_task(project: Project, study: str, storage: str) -> dict:
    return study_report(project, study, storage)


@flow(name="tune", log_prints=True)
def tune(
    study: str,
    trials: int,
    workers: int = 1,
    storage: str | None = None,
    search_file: str | None = None,
    params_dir: str | None = None,
    overrides: list[str] | None = None,
    report: bool = True,
) -> dict:
    request = TuneRequest(
        study,
        Project.discover(),
        storage,
        Path(search_file) if search_file else None,
        Path(params_dir) if params_dir else None,
        tuple(overrides or ()),
        flow_run_id=str(flow_run.get_id()),
    )
    session = open_study_task(request)
    pool = WorkerPool.start(request, trials, workers - 1)
    try:
        own = optimize_task(session, trials)
    except BaseException:
        pool.interrupt()
        raise
    summary = {
        "study": study,
        "storage": session.storage_display,
        "parent_run_id": session.parent_run_id,
        **own,
        "workers": pool.wait(),
    }
    if report:
        summary["report"] = report_task(request.project, study, session.storage)
        create_markdown_artifact(
            render_markdown(summary["report"]),
            key="study-report",
            description=f"Optuna study {study}",
        )
    return summary


if __name__ == "__main__":
    import sys

    tune(study=sys.argv[1], trials=int(sys.argv[2]))
