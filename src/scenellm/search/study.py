"""Create or join a study: the worker's session (study, MLflow parent run, base params).

**Joining.** Every worker runs the same code: the one whose ``create_study`` wins creates
the study's MLflow parent run and stores its id (with the search-space digest and data
version) as study user attributes; the others load the study, wait for that id and log
their trials under it. A worker whose search space or data differs is refused: its trials
would not be comparable.

**Seeds.** A configured sampler seed becomes ``seed + 10007·worker_index + trials already
in the study``: a fresh single-worker study is reproducible, and neither a re-run nor a
second worker replays proposals that were already tried.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback

from scenellm.config.load import apply_overrides, read_params_dir, validate
from scenellm.config.names import check_name
from scenellm.config.schema import Params
from scenellm.errors import UserError
from scenellm.project import Project
from scenellm.search.objective import RUN_ID, STATE_TAG
from scenellm.search.space import SearchConfig, load_search
from scenellm.search.storage import display, open_storage, resolve_target
from scenellm.tracking.runs import Tracker

PARENT = "mlflow_parent_run_id"
DIGEST, DATA, METRIC = "study_digest", "data_version", "objective_metric"
SEARCH, BASE = "search", "base_params"


@dataclass(frozen=True)
class TuneRequest:
    """What a worker was asked to do (the CLI options, resolved)."""

    study: str
    project: Project
    storage: str | None = None
    search_file: Path | None = None
    params_dir: Path | None = None
    overrides: tuple[str, ...] = ()
    worker_index: int = 0
    flow_run_id: str | None = None

    def __post_init__(self) -> None:
        check_name(self.study, "study")  # it names folders under the project's store

    @property
    def search_path(self) -> Path:
        return self.search_file or self.project.params_dir / "search.yaml"


@dataclass
class StudySession:
    """An open study with everything a trial needs."""

    request: TuneRequest
    search: SearchConfig
    raw: dict[str, Any]
    params: Params
    study: optuna.Study
    storage: str
    tracker: Tracker
    parent_run_id: str
    data_version: str
    lineage: dict[str, str] = field(default_factory=dict)

    @property
    def project(self) -> Project:
        return self.request.project

    @property
    def storage_display(self) -> str:
        return display(self.storage)


class StaleTrialRetry(RetryHeartbeatStaleTrialCallback):
    """Re-queue a dead worker's trial (same params, its reported epochs kept) and end its
    MLflow run as FAILED."""

    def __init__(self, tracker: Tracker, max_retry: int | None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(max_retry=max_retry, inherit_intermediate_values=True)
        self.tracker = tracker

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        super().__call__(study, trial)
        if RUN_ID in trial.user_attrs:
            self.tracker.set_tags(trial.user_attrs[RUN_ID], {STATE_TAG: "FAIL"})
            self.tracker.end(trial.user_attrs[RUN_ID], "FAILED")


def _parent_run(
    study: optuna.Study,
    created: bool,
    tracker: Tracker,
    search: SearchConfig,
    params: Params,
    lineage: dict[str, str],
    timeout: float = 60.0,
) -> str:
    """The study's parent run id: created by the study's creator, awaited by joiners (a
    creator that died before storing it is replaced after ``timeout``)."""
    deadline = time.monotonic() + (0 if created else timeout)
    while PARENT not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.5)
    if PARENT in study.user_attrs:
        return study.user_attrs[PARENT]
    spec = {
        "objective": search.objective.model_dump(),
        "fixed": search.fixed,
        "space": {k: v.model_dump() for k, v in search.space.items()},
        "sampler": search.sampler.model_dump(),
        "pruner": search.pruner.model_dump(),
    }
    parent = tracker.start_parent(f"study-{study.study_name}", lineage, spec)
    tracker.log_dict(parent, params.model_dump(mode="json"), "base_params.json")
    for key, value in (
        (DIGEST, search.digest(params)),
        (DATA, lineage["scenellm.data_md5"]),
        (METRIC, search.objective.metric),
        (SEARCH, search.model_dump(mode="json")),
        (BASE, params.model_dump(mode="json")),
        (PARENT, parent),
    ):
        study.set_user_attr(key, value)  # PARENT last: joiners wait for it
    return parent


def _check_join(study: optuna.Study, search: SearchConfig, params: Params, version: str) -> None:
    name, attrs = study.study_name, study.user_attrs
    want = optuna.study.StudyDirection[search.objective.direction.upper()]
    if study.direction != want:
        raise UserError(
            f"study '{name}' {study.direction.name.lower()}s its objective; "
            f"search.yaml asks to {search.objective.direction} (use a new name)."
        )
    digest = search.digest(params)
    if attrs.get(DIGEST, digest) != digest:
        raise UserError(
            f"study '{name}' was started with other params or another search.yaml "
            "(objective, space, fixed, sampler, pruner); restore them or use a new "
            "--study."
        )
    if attrs.get(DATA, version) != version:
        raise UserError(
            f"study '{name}' was started on data {attrs[DATA]}, this worker sees "
            f"{version}; trials on other data are not comparable (new --study)."
        )


def open_study(request: TuneRequest) -> StudySession:
    """Create the study (and its MLflow parent run) or join it."""
    from scenellm.stages.pipeline import resolve_data
    from scenellm.tracking.lineage import lineage_tags

    project = request.project
    search = load_search(request.search_path)
    raw = apply_overrides(
        read_params_dir(request.params_dir or project.params_dir), list(request.overrides)
    )
    params = validate(raw, source="params")
    search.check(raw, source=str(request.search_path))
    data_root, version = resolve_data(params, project)
    tracker = Tracker(project.mlflow_tracking_uri, params.orchestration.experiment)
    target = resolve_target(request.storage, project)
    storage = open_storage(
        target, search.heartbeat, StaleTrialRetry(tracker, search.heartbeat.max_retry)
    )
    direction = search.objective.direction
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=request.study,
            direction=direction,
            pruner=search.make_pruner(),
            sampler=search.sampler_for(10007 * request.worker_index),
        )
        created = True
    except DuplicatedStudyError:
        study = optuna.load_study(
            study_name=request.study, storage=storage, pruner=search.make_pruner()
        )
        study.sampler = search.sampler_for(10007 * request.worker_index + len(study.trials))
        created = False
    lineage = lineage_tags(
        project.root, version, {}, flow_run_id=request.flow_run_id, study=request.study
    )
    lineage["scenellm.optuna_storage"] = display(target)
    parent = _parent_run(study, created, tracker, search, params, lineage)
    if created:
        tracker.log_dataset(parent, "action-genome", data_root, version)
    else:
        _check_join(study, search, params, version)
        tracker.client.update_run(parent, status="RUNNING")
    lineage["scenellm.parent"] = parent
    return StudySession(
        request, search, raw, params, study, target, tracker, parent, version, lineage
    )
