"""A model named on the command line, loaded for inference.

    scenellm@champion     a registered alias (``models:/`` prefix optional)
    scenellm/3            a registered version
    <run id>              32 hex digits: the model that run logged (a stage's child run
                          stands for its pipeline run)
    PATH                  a downloaded pyfunc model folder (with ``MLmodel``) or an
                          inference bundle folder (with ``bundle.json``)
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenellm.errors import ModelArtifactError, UserError

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
VERSION = re.compile(r"^(?P<name>[^/@]+)/(?P<version>\d+)$")
ALIAS = re.compile(r"^(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: ``uri`` (artifact URI or local folder) and, for a registry
    model, its name and version; ``run_id`` is the run that logged it."""

    text: str
    uri: str
    name: str | None = None
    version: int | None = None
    run_id: str | None = None
    local: bool = False

    def tags(self) -> dict[str, str]:
        """What a run that used this model records about it."""
        out = {"scenellm.model": self.text, "scenellm.model_uri": self.uri}
        if self.version is not None:
            out.update({"scenellm.model_name": str(self.name),
                        "scenellm.model_version": str(self.version)})
        if self.run_id:
            out["scenellm.model_run_id"] = self.run_id
        return out


def resolve_model(text: str, tracking_uri: str) -> ModelRef:
    """The :class:`ModelRef` for ``text``; a one-line :class:`UserError` when none matches."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if Path(text).expanduser().exists():
        return ModelRef(text, str(Path(text).expanduser().resolve()), local=True)
    name = text.strip().removeprefix("models:/")
    client = MlflowClient(tracking_uri)
    try:
        if match := ALIAS.match(name):
            version = client.get_model_version_by_alias(match["name"], match["alias"])
        elif match := VERSION.match(name):
            version = client.get_model_version(match["name"], match["version"])
        elif RUN_ID.match(name):
            return _run_model(client, text, name)
        else:
            raise UserError(f"{text}: not a folder, NAME@ALIAS, NAME/VERSION or run id "
                            "(e.g. scenellm@champion).")
    except MlflowException as exc:
        raise UserError(f"{text}: not found in the MLflow store {tracking_uri} "
                        f"({exc.error_code}); list models with `mlflow ui`.") from exc
    uri = client.get_model_version_download_uri(version.name, version.version)
    return ModelRef(text, uri, version.name, int(version.version), version.run_id)


def _run_model(client, text: str, run_id: str) -> ModelRef:
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    parent = run.data.tags.get("mlflow.parentRunId")
    if not outputs and parent:  # a stage's child run: its pipeline run logged the model
        return _run_model(client, text, parent)
    if not outputs:
        raise UserError(f"{text}: run {run_id} logged no model; give a registered "
                        "NAME@ALIAS or the train run that registered one.")
    model_id = outputs[-1].model_id
    return ModelRef(text, client.get_logged_model(model_id).artifact_location, run_id=run_id)


def download(ref: ModelRef, tracking_uri: str, dst: Path) -> Path:
    """The model's local folder (``ref.uri`` itself when it is local)."""
    import mlflow

    if ref.local:
        return Path(ref.uri)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=str(dst),
                                                    tracking_uri=tracking_uri))


def load_predictor(text: str, tracking_uri: str) -> tuple[Any, ModelRef]:
    """``(ScenePredictor, ModelRef)`` of the model ``text`` names; a model without an
    inference bundle is a one-line :class:`ModelArtifactError`."""
    import os

    import mlflow

    from scenellm.inference.bundle import MANIFEST, load_bundle

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    ref = resolve_model(text, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="scenellm-model-") as tmp:
        local = download(ref, tracking_uri, Path(tmp))
        if (local / MANIFEST).is_file():
            return load_bundle(local), ref
        if not (local / "MLmodel").is_file():
            raise ModelArtifactError(f"{text}: {local} holds neither an MLflow model "
                                     "(MLmodel) nor an inference bundle (bundle.json).")
        model = mlflow.pyfunc.load_model(str(local)).unwrap_python_model().model
    if not callable(getattr(model, "predict", None)):
        raise ModelArtifactError(f"{text}: this model was logged without an inference bundle "
                                 "(detector, vocabularies), so it cannot predict; register it "
                                 "again with `scenellm run`.")
    return model, ref
