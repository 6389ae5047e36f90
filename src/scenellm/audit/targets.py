"""What ``scenellm audit TARGET`` names, resolved to one MLflow run.

    <run id>                 32 hex digits: a train run, a trial, or a stage's child run
                             (which stands for its parent train run)
    scenellm/3               a registered model version (``models:/`` prefix optional)
    scenellm@champion        a registered model alias
    study:NAME/trial:N       the run tagged ``scenellm.study=NAME`` and ``scenellm.trial=N``

A model version points at the run that logged it (the train flow's parent run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scenellm.errors import UserError

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
VERSION = re.compile(r"^(?P<name>[^/@]+)/(?P<version>\d+)$")
ALIAS = re.compile(r"^(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
TRIAL = re.compile(r"^study:(?P<study>[^/']+)/trial:(?P<trial>\d+)$")


@dataclass(frozen=True)
class Target:
    """The run an audit starts from and how the user named it."""

    text: str
    kind: str  # "run" | "model" | "trial"
    run_id: str
    model: dict[str, Any] | None = None  # {"name", "version", "aliases", "tags"}
    study: str | None = None
    trial: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _model(client, text: str, version) -> Target:
    if not version.run_id:
        raise UserError(
            f"{text}: model version {version.version} was registered without a "
            "run, so it has no recorded lineage to audit."
        )
    info = {
        "name": version.name,
        "version": int(version.version),
        "aliases": sorted(version.aliases or []),
        "tags": dict(version.tags or {}),
    }
    return Target(text, "model", version.run_id, model=info)


def _trial(client, text: str, study: str, trial: int) -> Target:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments, f"tags.`scenellm.study` = '{study}' and tags.`scenellm.trial` = '{trial}'"
    )
    ids = {r.info.run_id for r in runs}
    # A trial's own stage runs may carry the same tags; the trial run is the outermost one.
    outer = [r for r in runs if r.data.tags.get("mlflow.parentRunId") not in ids]
    if not outer:
        raise UserError(
            f"{text}: no run is tagged scenellm.study={study} and "
            f"scenellm.trial={trial}; check the study name with `mlflow ui`."
        )
    outer.sort(key=lambda r: r.info.start_time or 0, reverse=True)
    return Target(
        text, "trial", outer[0].info.run_id, study=study, trial=trial, extra={"matches": len(outer)}
    )


def _run(client, text: str, run) -> Target:
    """A stage's child run stands for its pipeline run, which holds the whole lineage."""
    tags = run.data.tags
    if "scenellm.stage" in tags and "mlflow.parentRunId" in tags:
        return Target(
            text,
            "run",
            tags["mlflow.parentRunId"],
            extra={"stage_run": run.info.run_id, "stage": tags["scenellm.stage"]},
        )
    return Target(text, "run", run.info.run_id)


def resolve_target(client, text: str) -> Target:
    """The :class:`Target` for ``text``; a one-line :class:`UserError` when nothing matches."""
    from mlflow.exceptions import MlflowException

    name = text.strip().removeprefix("models:/")
    try:
        if match := TRIAL.match(name):
            return _trial(client, text, match["study"], int(match["trial"]))
        if match := ALIAS.match(name):
            return _model(
                client, text, client.get_model_version_by_alias(match["name"], match["alias"])
            )
        if match := VERSION.match(name):
            return _model(client, text, client.get_model_version(match["name"], match["version"]))
        if RUN_ID.match(name):
            return _run(client, text, client.get_run(name))
    except MlflowException as exc:
        raise UserError(
            f"{text}: not found in the MLflow store ({exc.error_code}); "
            "give a run id, NAME/VERSION, NAME@ALIAS or study:NAME/trial:N."
        ) from exc
    raise UserError(f"{text}: not a run id, NAME/VERSION, NAME@ALIAS or study:NAME/trial:N.")
