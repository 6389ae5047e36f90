"""Run a stage and everything upstream of it, reusing complete outputs; and the same under
MLflow (:class:`PipelineRun`: one parent run, a child run per stage, lineage tags)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenellm.config.schema import Params
from scenellm.data.version import data_version
from scenellm.project import Project
from scenellm.stages.base import StageResult, run_stage
from scenellm.stages.registry import stage_module, upstream_closure

TRAINING_STAGES = ("features", "detect", "vqvae", "finetune")  # features trains the detector
MetricsLogger = Callable[[str, dict[str, float], int | None], None]


def resolve_data(params: Params, project: Project) -> tuple[Path, str]:
    """The configured data root and its DVC md5 (the data version); links that leave the
    root or dangle are refused before any file is read. A missing root that a ``.dvc``
    file tracks is pulled from the DVC remote first (a worker on a fresh clone)."""
    from scenellm.data.dvc_remote import pull_missing
    from scenellm.data.frame_files import check_links

    root = project.data_root(params.data.root)
    pull_missing(project, root)
    check_links(root)
    return root, data_version(root, cache_dir=project.home)


def run_one(name: str, params: Params, project: Project, data_root: Path, version: str,
            results: dict[str, StageResult], log_metrics: MetricsLogger | None = None,
            verify: bool = False, force: bool = False) -> StageResult:
    """Run or reuse one stage; with shared outputs on (:mod:`scenellm.stages.shared_outputs`)
    an output missing here is fetched first, and one the remote lacks is pushed after."""
    from scenellm.stages.shared_outputs import SharedOutputs

    module = stage_module(name)
    inputs = {dep: results[dep] for dep in module.SPEC.upstream}
    logger = (lambda m, step=None: log_metrics(name, m, step)) if log_metrics else None
    shared = SharedOutputs.of(project)
    if shared and not force:
        shared.fetch(module.SPEC, params, version, inputs, project)
    result = run_stage(module.SPEC, module.run, params, project, data_root, version, inputs,
                       log_metrics=logger, verify=verify, force=force)
    if shared:
        shared.push(result)
    return result


def run_until(target: str, params: Params, project: Project,
              on_result: Callable[[StageResult], None] | None = None,
              log_metrics: MetricsLogger | None = None, verify: bool = False,
              force: tuple[str, ...] = ()) -> dict[str, StageResult]:
    """Run ``target`` and its upstream stages; ``force`` names stages to recompute even
    when their output is intact."""
    data_root, version = resolve_data(params, project)
    results: dict[str, StageResult] = {}
    for name in upstream_closure(target):
        results[name] = run_one(name, params, project, data_root, version, results, log_metrics,
                                verify=verify, force=name in force)
        if on_result:
            on_result(results[name])
    return results


@dataclass
class PipelineRun:
    """The stages of one pipeline run under one MLflow parent run (both entry points use
    it: the Prefect ``train`` flow, one task per stage, and plain calls)."""

    project: Project
    params: Params
    data_root: Path
    data_version: str
    tracker: Any
    parent_id: str
    flow_run_id: str | None = None
    verify: bool = False
    force: tuple[str, ...] = ()
    results: dict[str, StageResult] = field(default_factory=dict)
    stage_runs: dict[str, str | None] = field(default_factory=dict)  # None: reused, no run
    planned: dict[str, str] | None = None

    @classmethod
    @contextmanager
    def open(cls, project: Project, params: Params, run_name: str,
             flow_run_id: str | None = None, verify: bool = False,
             force: tuple[str, ...] = ()) -> Iterator[PipelineRun]:
        """``with PipelineRun.open(...) as run:`` the parent run ends FINISHED, or FAILED
        when the block raises."""
        from scenellm.config.load import flatten
        from scenellm.tracking.lineage import lineage_tags
        from scenellm.tracking.runs import Tracker

        data_root, version = resolve_data(params, project)
        tracker = Tracker(project.mlflow_tracking_uri, params.orchestration.experiment)
        tags = lineage_tags(project.root, version, {}, flow_run_id=flow_run_id)
        with tracker.parent_run(run_name, tags, flatten(params)) as parent:
            tracker.log_dataset(parent, "action-genome", data_root, version)
            tracker.log_dict(parent, params.model_dump(mode="json"), "params.json")
            yield cls(project, params, data_root, version, tracker, parent, flow_run_id,
                      verify, force)

    def stage(self, name: str, record: bool = False) -> StageResult:
        """Run (or reuse) one stage; its output and metrics are then also where
        ``dvc.yaml`` reads them.

        A computed stage gets its own child run (training stages with system metrics); a
        reused one gets none (unless ``record``: a stage computed for this run elsewhere,
        e.g. on a GPU pool): the parent run records the reuse and the run that computed
        the output (``scenellm.stage.NAME.computed_in``). After ``evaluate`` the parent
        carries the headline metrics of the model and its references."""
        from scenellm.stages.dvc import publish_for_dvc
        from scenellm.stages.summary import headline_metrics
        from scenellm.tracking.lazy_run import LazyChildRun
        from scenellm.tracking.lineage import stage_tags

        child = LazyChildRun(self.tracker, self.parent_id, name,
                             system_metrics=name in TRAINING_STAGES)
        with child.ending():
            if record or self.expected_action(name) != "reuse":
                child.open()  # now, so that system metrics cover the whole stage
            result = run_one(name, self.params, self.project, self.data_root,
                             self.data_version, self.results,
                             log_metrics=lambda stage, m, step: self.tracker.log_metrics(
                                 child.run_id, m, step),
                             verify=self.verify, force=name in self.force)
            self.results[name] = result
            if child.created or not result.reused:
                self.tracker.log_stage(child.run_id, result)
                self.log_history_plot(child.run_id, result)
        self.stage_runs[name] = child.run_id if child.created else None
        tags = stage_tags(result)
        if not child.created:
            tags[f"scenellm.stage.{name}.computed_in"] = self.tracker.computing_run(
                name, result.fingerprint) or "untracked"
        self.tracker.set_tags(self.parent_id, tags)
        if name == "evaluate":
            finetune = self.results.get("finetune")
            self.tracker.log_metrics(self.parent_id, headline_metrics(
                result.metrics, finetune.metrics if finetune else {}))
        publish_for_dvc(result, self.project.root)
        return result

    def log_history_plot(self, run_id: str, result: StageResult) -> None:
        """A training stage's loss and validation curves, as ``history.png`` on its run."""
        import tempfile

        from scenellm.stages.dvc import HISTORY_PLOTS, history_records
        from scenellm.stages.history_plot import plot_history

        records = history_records(result.path, result.name)
        if result.name not in HISTORY_PLOTS or not records:
            return
        with tempfile.TemporaryDirectory() as tmp:
            ids = f"data {self.data_version[:12]}  ·  {result.name} {result.fingerprint[:12]}"
            self.tracker.log_artifacts(run_id, [plot_history(
                records, result.name, Path(tmp) / "history.png", ids)])

    def expected_action(self, name: str) -> str:
        """What the plan made when the run opened expects of ``name`` (reuse, compute,
        resume, recompute); a stage outside the plan is expected to compute."""
        if self.planned is None:
            from scenellm.stages.plan import plan

            try:
                self.planned = {p.name: p.action for p in plan(
                    "evaluate", self.params, self.project, self.data_version,
                    force=self.force)}
            except Exception:  # noqa: BLE001  (only a hint; the stage itself decides)
                self.planned = {}
        return self.planned.get(name, "compute")

    def register(self, force: bool = False, name: str | None = None) -> dict:
        """Log and register the fine-tuned model with the champion / challenger rule, which
        reads the validation metric only; the test metric is reported with the version."""
        from scenellm.evaluation import PRIMARY_METRIC, SELECTION_METRIC
        from scenellm.inference.bundle import example_request, staged_bundle
        from scenellm.tracking.registry import MODEL_NAME, register_finetuned

        finetune = self.results["finetune"]
        test = self.results["evaluate"].metrics[PRIMARY_METRIC]
        with staged_bundle(self.results, self.params) as bundle:
            outcome = register_finetuned(
                self.tracker.client, self.parent_id, bundle, finetune.fingerprint,
                finetune.metrics["best_" + SELECTION_METRIC], self.data_version, force=force,
                name=name or MODEL_NAME, report={PRIMARY_METRIC: test},
                input_example=example_request(self.data_root, self.results["prepare"].path))
        return {**outcome, "test_metric": test}


JOINABLE = ("features",)  # stages whose run in progress other processes can help


def join_run(name: str, params: Params, project: Project, wait: float = 600.0) -> dict:
    """Help the run of stage ``name`` in progress on this store (same params, same data):
    write the shards it planned that nobody has claimed. Upstream outputs are reused (or
    fetched); the stage's own run keeps its lock, merges the manifest and publishes."""
    from scenellm.config.load import params_hash
    from scenellm.errors import UserError
    from scenellm.stages.base import SUCCESS, StageContext, fingerprint_inputs

    if name not in JOINABLE:
        raise UserError(f"--join: only {', '.join(JOINABLE)} can be joined, not {name!r}.")
    module = stage_module(name)
    root, version = resolve_data(params, project)
    results = {}
    for dep in module.SPEC.upstream:
        results.update(run_until(dep, params, project))
    inputs = {dep: results[dep] for dep in module.SPEC.upstream}
    fp = params_hash(fingerprint_inputs(module.SPEC, params, version,
                                        {k: v.fingerprint for k, v in inputs.items()}))
    stage_dir = project.stage_dir(name)
    if (stage_dir / fp[:16] / SUCCESS).exists():
        return {"stage": name, "fingerprint": fp, "written": 0, "state": "output complete"}
    ctx = StageContext(module.SPEC, params, project, root, version, inputs,
                       stage_dir / f"{fp[:16]}.partial", fp)
    return {"stage": name, "fingerprint": fp, **module.join(ctx, wait=wait)}
