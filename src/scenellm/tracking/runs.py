"""MLflow runs of a pipeline: one parent run, one child run per stage or trial.

Everything goes through an explicit :class:`mlflow.MlflowClient` and run ids, never through
the fluent API's global "active run", so stages and trials may log from threads and
processes at the same time. MLflow's own ``log_batch`` splits params, tags and metrics into
requests within the server's batch limits.

MLflow keys allow only ``[/\\w.\\- :]``; :func:`metric_key` maps our metric names onto that set
(``R@20`` → ``R_at_20``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from numbers import Real
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import mlflow
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from scenellm.tracking.lineage import StageRecord, stage_tags

# What of a stage's output folder goes to its MLflow run: plots, metrics, reports.
STAGE_ARTIFACTS = ("*.png", "metrics.json", "summary.json", "table.txt", "history.json",
                   "validation.json", "validation", "examples")

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def metric_key(name: str) -> str:
    """An MLflow-valid metric name: ``@`` reads as ``_at_``, other bad characters become ``_``."""
    return _BAD_KEY_CHARS.sub("_", name.replace("@", "_at_"))


def param_value(value: Any) -> str:
    """Strings as they are, everything else as JSON (so it can be pasted into ``--set``)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:MAX_PARAM_VAL_LENGTH]


def flatten_dict(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten_dict(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric, finite leaves of a (nested) metrics dict, under MLflow-valid keys."""
    return {
        metric_key(k): float(v)
        for k, v in flatten_dict(metrics).items()
        if isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)
    }


def sqlite_artifact_root(tracking_uri: str) -> str | None:
    """``<folder of mlflow.db>/mlartifacts`` for SQLite stores; None lets the server decide.

    Without it MLflow writes the artifacts of a SQLite store under the current directory.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    # SQLAlchemy: sqlite:///rel.db is relative to the working directory, sqlite:////abs.db not.
    db = Path(unquote(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]))
    return (db.parent / "mlartifacts").resolve().as_uri()


class Tracker:
    """Parent and child runs in one MLflow experiment, addressed by run id."""

    def __init__(self, tracking_uri: str, experiment: str = "scenellm") -> None:
        self.tracking_uri = tracking_uri
        self.client = mlflow.MlflowClient(tracking_uri)
        self.experiment_id = self._experiment_id(experiment)

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(
                name, artifact_location=sqlite_artifact_root(self.tracking_uri)
            )
        except MlflowException:
            found = self.client.get_experiment_by_name(name)  # another worker created it
            if found is None:
                raise
            return found.experiment_id

    def _run(self, run_name: str, tags: Mapping[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=run_name)
        self.set_tags(run.info.run_id, tags)
        return run.info.run_id

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(
            run_id, tags=[RunTag(k, str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in tags.items()]
        )

    def start_parent(
        self, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any]
    ) -> str:
        """A new top-level run with ``tags`` and ``params`` (nested dicts are flattened with
        dots; values are stringified and cut to MLflow's limit, the full set goes to
        ``params.json``). Left running: open runs with :meth:`parent_run`, or wrap the work
        in :meth:`ending` (a study's parent outlives the process that created it)."""
        run_id = self._run(run_name, tags)
        flat = flatten_dict(params)
        self.client.log_batch(run_id, params=[Param(k, param_value(v)) for k, v in flat.items()])
        self.log_dict(run_id, flat, "params.json")
        return run_id

    def start_child(
        self, parent_run_id: str, stage_name: str, tags: Mapping[str, str] | None = None
    ) -> str:
        """A run nested under ``parent_run_id`` (MLflow's ``mlflow.parentRunId`` tag), left
        running; :meth:`child_run` is the way to open one."""
        return self._run(
            stage_name,
            {MLFLOW_PARENT_RUN_ID: parent_run_id, "scenellm.stage": stage_name, **(tags or {})},
        )

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the finite numeric values of ``metrics``; anything else is skipped."""
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step or 0) for k, v in finite_metrics(metrics).items()]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def computing_run(self, stage: str, fingerprint: str) -> str | None:
        """The child run that computed ``stage``'s output ``fingerprint``, if one did (an
        output made by ``scenellm stage`` or ``dvc repro`` has none)."""
        key = f"tags.`scenellm.stage.{stage}."
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`scenellm.stage` = '{stage}' and {key}fingerprint` = '{fingerprint}' "
            f"and {key}reused` = 'false'",
            max_results=1, order_by=["attributes.start_time ASC"])
        return runs[0].info.run_id if runs else None

    def log_artifacts(self, run_id: str, paths: list[Path]) -> None:
        """Files go to the artifact root, folders keep their name (``validation/…``)."""
        for path in paths:
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                self.client.log_artifact(run_id, str(path))
            else:
                raise FileNotFoundError(f"{path}: artifact to log does not exist.")

    def log_stage(
        self, run_id: str, result: StageRecord, artifact_paths: list[Path] | None = None
    ) -> None:
        """A stage's metrics, lineage tags (fingerprint, output hash, reused, seconds) and
        artifacts (default: the :data:`STAGE_ARTIFACTS` of its output folder)."""
        if artifact_paths is None:
            artifact_paths = [p for g in STAGE_ARTIFACTS for p in sorted(result.path.glob(g))]
        self.log_metrics(run_id, result.metrics)
        self.set_tags(run_id, stage_tags(result, seconds=True))
        self.log_artifacts(run_id, artifact_paths)

    def log_dataset(
        self, run_id: str, name: str, data_root: Path, data_version: str, context: str = "training"
    ) -> None:
        """Record ``data_root`` as the run's input dataset whose digest is the DVC md5."""
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.sources import LocalArtifactDatasetSource

        source = LocalArtifactDatasetSource(str(Path(data_root).resolve()))
        dataset = MetaDataset(source, name=name, digest=data_version)
        self.client.log_inputs(
            run_id,
            [
                DatasetInput(
                    dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]
                )
            ],
        )

    def log_dict(self, run_id: str, obj: Any, artifact_file: str) -> None:
        self.client.log_dict(run_id, obj, artifact_file)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    @contextmanager
    def ending(
        self, run_id: str, finished_on: tuple[type[BaseException], ...] = ()
    ) -> Iterator[str]:
        """End ``run_id`` when the block ends: FINISHED, KILLED on Ctrl-C, FAILED on any
        other exception (re-raised); exceptions in ``finished_on`` (e.g. a pruned trial)
        end it FINISHED and are re-raised."""
        try:
            yield run_id
        except finished_on:
            self.end(run_id, "FINISHED")
            raise
        except KeyboardInterrupt:
            self.end(run_id, "KILLED")
            raise
        except BaseException:
            self.end(run_id, "FAILED")
            raise
        self.end(run_id, "FINISHED")

    @contextmanager
    def parent_run(
        self, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any]
    ) -> Iterator[str]:
        """``with tracker.parent_run(...) as run_id:`` a new top-level run, ended as
        :meth:`ending` says. The way pipeline runs are opened."""
        with self.ending(self.start_parent(run_name, tags, params)) as run_id:
            yield run_id

    @contextmanager
    def child_run(
        self,
        parent_run_id: str,
        stage_name: str,
        tags: Mapping[str, str] | None = None,
        finished_on: tuple[type[BaseException], ...] = (),
    ) -> Iterator[str]:
        """Like :meth:`parent_run` for a child run (a stage or a trial)."""
        with self.ending(self.start_child(parent_run_id, stage_name, tags), finished_on) as run:
            yield run
