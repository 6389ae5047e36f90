"""A run's lineage as MLflow recorded it: tags, params, dataset input, stage child runs.

Nothing here looks at the files on disk; :mod:`scenellm.audit.checks` compares this record
with them. Top-level lineage fields a run lacks (a study trial whose commit and data version
sit on the study's parent run) are taken from its parent run and listed in ``inherited``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenellm.tracking.lineage import parse_lineage

PARENT_TAG = "mlflow.parentRunId"
INHERITABLE = ("git_commit", "git_dirty", "data_md5", "prefect_flow_run_id", "study")


@dataclass
class RecordedStage:
    """One stage as recorded on the run (``scenellm.stage.<name>.*``) and its child run."""

    name: str
    fingerprint: str | None = None
    output_hash: str | None = None
    reused: bool | None = None
    child_run_id: str | None = None
    child_status: str | None = None
    child: dict[str, Any] = field(default_factory=dict)  # the child's own stage tags
    metrics: dict[str, float] = field(default_factory=dict)  # MLflow metric keys


@dataclass
class RecordedRun:
    run_id: str
    run_name: str
    status: str
    experiment_id: str
    start_time: int | None
    tags: dict[str, str]
    lineage: dict[str, Any]  # parse_lineage(tags), with inherited fields filled in
    inherited: list[str]
    parent: dict[str, str] | None  # {"run_id", "run_name"} of the parent run
    trial: str | None
    raw_params: dict[str, Any] | None  # nested sections, as params.json holds them
    params_source: str | None  # "params.json" | "run params"
    run_params: dict[str, str]
    dataset: dict[str, str] | None  # {"name", "digest", "source"}
    stages: dict[str, RecordedStage]
    models: list[dict[str, Any]]  # registered versions logged from this run

    @property
    def data_md5(self) -> str | None:
        return self.lineage["data_md5"]

    @property
    def git_commit(self) -> str | None:
        return self.lineage["git_commit"]


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"vqvae.lr": 1, "a.b.c": 2}`` → ``{"vqvae": {"lr": 1}, "a": {"b": {"c": 2}}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *path, name = key.split(".")
        node = nested
        for part in path:
            node = node.setdefault(part, {})
        node[name] = value
    return nested


def _param(value: str) -> Any:
    """Inverse of :func:`scenellm.tracking.runs.param_value`: JSON, or the plain string."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def read_artifact_json(client, run_id: str, path: str) -> Any | None:
    """A JSON artifact of a run, or None when it is missing or unreadable."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text())
        except (MlflowException, OSError, ValueError):
            return None


def _params(client, run) -> tuple[dict | None, str | None]:
    found = read_artifact_json(client, run.info.run_id, "params.json")
    if isinstance(found, dict) and found:
        flat = all("." in k for k in found)  # Tracker.start_parent's flat form
        return (unflatten(found) if flat else found), "params.json"
    if run.data.params:
        return unflatten({k: _param(v) for k, v in run.data.params.items()}), "run params"
    return None, None


def _stages(client, run, lineage: dict) -> dict[str, RecordedStage]:
    stages = {
        name: RecordedStage(name, f.get("fingerprint"), f.get("output_hash"), f.get("reused"))
        for name, f in lineage["stages"].items()
    }
    children = client.search_runs(
        [run.info.experiment_id], f"tags.`{PARENT_TAG}` = '{run.info.run_id}'"
    )
    for child in sorted(children, key=lambda r: r.info.start_time or 0):
        name = child.data.tags.get("scenellm.stage")
        if not name:
            continue
        stage = stages.setdefault(name, RecordedStage(name))
        own = parse_lineage(child.data.tags)["stages"].get(name, {})
        stage.child_run_id, stage.child_status = child.info.run_id, child.info.status
        stage.child, stage.metrics = own, dict(child.data.metrics)
        stage.fingerprint = stage.fingerprint or own.get("fingerprint")
        stage.output_hash = stage.output_hash or own.get("output_hash")
    from mlflow.exceptions import MlflowException

    for name, stage in stages.items():  # reused without a child run: the computing run
        computed_in = lineage["stages"][name].get("computed_in") if name in lineage[
            "stages"] else None
        if stage.child_run_id is None and computed_in not in (None, "untracked"):
            try:
                child = client.get_run(computed_in)
            except MlflowException:
                continue
            stage.child_run_id, stage.child_status = child.info.run_id, child.info.status
            stage.child = parse_lineage(child.data.tags)["stages"].get(name, {})
            stage.metrics = dict(child.data.metrics)
    return stages


def _dataset(run) -> dict[str, str] | None:
    inputs = run.inputs.dataset_inputs if run.inputs else []
    if not inputs:
        return None
    dataset = inputs[0].dataset
    try:  # a local source is {"uri": "/path/to/data"}
        source = json.loads(dataset.source or "{}").get("uri")
    except (ValueError, AttributeError):
        source = None
    return {"name": dataset.name, "digest": dataset.digest, "source": source}


def load_recorded(client, run_id: str) -> RecordedRun:
    """Everything MLflow holds about ``run_id``'s lineage."""
    run = client.get_run(run_id)
    tags = dict(run.data.tags)
    lineage = parse_lineage(tags)
    parent_id, parent, inherited = tags.get(PARENT_TAG), None, []
    if parent_id:
        upper = client.get_run(parent_id)
        parent = {"run_id": parent_id, "run_name": upper.info.run_name}
        above = parse_lineage(upper.data.tags)
        for key in INHERITABLE:
            if lineage[key] is None and above[key] is not None:
                lineage[key], inherited = above[key], [*inherited, key]
    raw, source = _params(client, run)
    models = [
        {"name": v.name, "version": int(v.version), "aliases": sorted(v.aliases or [])}
        for v in client.search_model_versions(f"run_id = '{run_id}'")
    ]
    return RecordedRun(
        run_id,
        run.info.run_name,
        run.info.status,
        run.info.experiment_id,
        run.info.start_time,
        tags,
        lineage,
        inherited,
        parent,
        tags.get("scenellm.trial"),
        raw,
        source,
        dict(run.data.params),
        _dataset(run),
        _stages(client, run, lineage),
        models,
    )
