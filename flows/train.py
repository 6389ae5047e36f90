"""The ``train`` flow: prepare → features → detect → vqvae → finetune → evaluate, one Prefect task
per stage, tracked in MLflow, the fine-tuned model registered with the champion rule.

Stage reuse comes from the stage fingerprints (not Prefect's cache), so a re-run with
nothing changed does no stage work, across runs and processes.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from scenellm.config.load import load_params
from scenellm.errors import UserError
from scenellm.project import Project
from scenellm.stages.pipeline import PipelineRun
from scenellm.stages.registry import PIPELINE
from scenellm.stages.summary import summary_markdown, train_summary


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry a failed stage, except for bad data or params: a retry cannot fix those."""
    try:
        state.result()
    except UserError:
        return False
    except Exception:  # noqa: BLE001  (any other failure may be transient)
        return True
    return True


@task(name="stage", cache_policy=NO_CACHE, retry_condition_fn=retry_unless_user_error)
def stage_task(run: PipelineRun, name: str, record: bool = False):
    return run.stage(name, record)


def route_to_pool(run: PipelineRun, name: str, overrides: list[str]) -> None:
    """Run a GPU stage as the ``stage/<pool>`` deployment and wait for it."""
    from prefect.deployments import run_deployment

    orch = run.params.orchestration
    flow_run = run_deployment(
        name=f"stage/{orch.gpu_pool}",
        parameters={"name": name, "overrides": overrides,
                    "project_root": str(run.project.root)},
        timeout=orch.timeout_seconds.get(name),
        tags=["scenellm", f"parent:{run.parent_id}"],
    )
    if not flow_run.state or not flow_run.state.is_completed():
        raise RuntimeError(f"stage '{name}' on work pool '{orch.gpu_pool}' ended "
                           f"{flow_run.state.name if flow_run.state else 'without a state'}")


@flow(name="train", log_prints=True)
def train(overrides: list[str] | None = None, promote: bool = True,
          force_promote: bool = False, verify: bool = False,
          force: list[str] | None = None) -> dict:
    project = Project.discover()
    params = load_params(project.params_dir, overrides)
    orch = params.orchestration
    with PipelineRun.open(project, params, run_name=f"train-{flow_run.get_name()}",
                          flow_run_id=str(flow_run.get_id()), verify=verify,
                          force=tuple(force or ())) as run:
        for name in PIPELINE:
            routed = bool(orch.gpu_pool) and name in orch.gpu_stages \
                and run.expected_action(name) != "reuse"
            if routed:
                route_to_pool(run, name, overrides or [])  # the task below then reuses it
            stage_task.with_options(
                name=name, retries=orch.retries,
                retry_delay_seconds=exponential_backoff(backoff_factor=orch.retry_delay_seconds),
                timeout_seconds=orch.timeout_seconds.get(name),
            )(run, name, routed)  # a routed stage was computed for this run: recorded
        registration = run.register(force_promote) if promote else None
    summary = train_summary(run, registration)
    create_markdown_artifact(summary_markdown(summary), key="train-summary",
                             description="Stages, metrics and registry outcome of this run")
    return summary


if __name__ == "__main__":
    train()
