"""Run the pipeline stages under MLflow: one parent run, a child per stage, lineage tags.

Both entry points use it: the Prefect ``train`` flow (one task per stage) and plain
``scenellm stage``-style calls. No stage logic lives here, only bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scenellm.config.load import flatten
from scenellm.config.schema import Params
from scenellm.project import Project
from scenellm.stages.base import StageResult

ARTIFACT_GLOBS = ("*.png", "metrics.json", "summary.json", "table.txt", "history.json",
                  "validation")


@dataclass
class PipelineRun:
    """State shared by the stages of one pipeline run."""

    project: Project
    params: Params
    data_root: Path
    data_version: str
    tracker: object
    parent_id: str
    flow_run_id: str | None = None
    results: dict[str, StageResult] = field(default_factory=dict)

    @classmethod
    def start(cls, project: Project, params: Params, run_name: str,
              flow_run_id: str | None = None) -> PipelineRun:
        from scenellm.stages.pipeline import resolve_data
        from scenellm.tracking.lineage import lineage_tags
        from scenellm.tracking.runs import Tracker

        data_root, version = resolve_data(params, project)
        tracker = Tracker(project.mlflow_tracking_uri, params.orchestration.experiment)
        tags = lineage_tags(project.root, version, {}, flow_run_id=flow_run_id)
        parent = tracker.start_parent(run_name, tags, flatten(params))
        tracker.log_dataset(parent, "action-genome", data_root, version)
        tracker.log_dict(parent, params.model_dump(mode="json"), "params.json")
        return cls(project, params, data_root, version, tracker, parent, flow_run_id)

    def stage(self, name: str) -> StageResult:
        """Run (or reuse) one stage inside its own child run."""
        from scenellm.stages.pipeline import run_one
        from scenellm.tracking.lineage import stage_tags

        child = self.tracker.start_child(self.parent_id, name)
        try:
            result = run_one(name, self.params, self.project, self.data_root,
                             self.data_version, self.results,
                             log_metrics=lambda stage, m, step: self.tracker.log_metrics(
                                 child, m, step))
        except BaseException:
            self.tracker.end(child, "FAILED")
            raise
        self.results[name] = result
        artifacts = [p for g in ARTIFACT_GLOBS for p in sorted(result.path.glob(g))]
        self.tracker.log_stage(child, result, artifacts)
        self.tracker.set_tags(child, stage_tags(result, seconds=True))
        self.tracker.set_tags(self.parent_id, stage_tags(result))
        self.tracker.end(child)
        return result

    def finish(self, status: str = "FINISHED") -> None:
        self.tracker.end(self.parent_id, status)
