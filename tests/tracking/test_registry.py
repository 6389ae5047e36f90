"""Pyfunc packaging of the fine-tuned folder and the champion / challenger rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from scenellm.errors import ModelArtifactError
from scenellm.tracking.registry import (
    champion_info,
    load_directory_manifest,
    load_registered,
    log_model,
    promotion,
    register_and_promote,
    resolve_loader,
)
from scenellm.tracking.runs import Tracker

LOADER = "scenellm.tracking.registry:load_directory_manifest"
OLD, NEW = "a" * 32 + ".dir", "b" * 32 + ".dir"


@pytest.fixture(scope="module")
def logged(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One logged model (a tiny adapters + heads + config folder) shared by the module."""
    model_dir = tmp_path_factory.mktemp("finetuned")
    (model_dir / "adapter").mkdir()
    (model_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"\x00" * 16)
    (model_dir / "heads.safetensors").write_bytes(b"\x01" * 8)
    (model_dir / "config.json").write_text(json.dumps({"lora": {"rank": 4}, "llm": "tiny"}))
    tracker = Tracker(tracking_uri, "registry-tests")
    run_id = tracker.start_child(tracker.start_parent("pipeline", {}, {}), "finetune")
    uri = log_model(tracker.client, run_id, model_dir, loader=LOADER)
    return {"tracker": tracker, "run_id": run_id, "uri": uri, "dir": model_dir}


def test_logged_model_is_a_ready_output_of_its_run(logged: dict) -> None:
    client = logged["tracker"].client
    model = client.get_logged_model(logged["uri"].removeprefix("models:/"))
    assert model.status.to_int() == mlflow.entities.LoggedModelStatus.READY.to_int()
    assert model.source_run_id == logged["run_id"]
    assert model.experiment_id == logged["tracker"].experiment_id
    outputs = client.get_run(logged["run_id"]).outputs.model_outputs
    assert [o.model_id for o in outputs] == [model.model_id]


def test_registered_model_loads_with_one_call(
    logged: dict,
    tracking_uri: str,
    unique_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = logged["tracker"].client
    register_and_promote(client, logged["run_id"], logged["uri"], 0.5, OLD, name=unique_name)
    loaded = load_registered("champion", tracking_uri, name=unique_name, dst=tmp_path)
    assert loaded == load_directory_manifest(logged["dir"])
    assert loaded == {
        "config": {"lora": {"rank": 4}, "llm": "tiny"},
        "files": ["adapter/adapter_model.safetensors", "config.json", "heads.safetensors"],
    }
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)  # MLflow's own one-call load
    one_call = mlflow.pyfunc.load_model(f"models:/{unique_name}@champion")
    assert one_call.unwrap_python_model().model == loaded
    pyfunc = mlflow.pyfunc.load_model(str(next(tmp_path.rglob("MLmodel")).parent))
    assert pyfunc.model_config == {"loader": LOADER}
    with pytest.raises(ModelArtifactError, match="without an inference bundle"):
        pyfunc.predict(pd.DataFrame({"data_root": ["."], "video": ["v"]}))


# (metric, data version, force) of successive registrations →
# (alias, champion version afterwards, reason fragment)
CASES = [
    ((0.50, OLD, False), ("champion", "1", "no champion yet")),
    ((0.60, OLD, False), ("champion", "2", "0.6 > 0.5")),
    ((0.55, OLD, False), ("challenger", "2", "does not beat 0.6")),
    ((0.60, OLD, False), ("challenger", "2", "does not beat 0.6")),
    ((0.90, NEW, False), ("challenger", "2", "not comparable")),
    ((0.10, NEW, True), ("champion", "6", "forced over champion v2")),
    ((0.20, NEW, False), ("champion", "7", "0.2 > 0.1")),
    ((math.nan, NEW, False), ("challenger", "7", "does not beat")),
]


def test_champion_challenger_rule(logged: dict, unique_name: str) -> None:
    client = logged["tracker"].client
    assert champion_info(client, unique_name) is None
    previous = None
    for version, ((metric, data, force), (alias, champion, reason)) in enumerate(CASES, 1):
        out = register_and_promote(
            client, logged["run_id"], logged["uri"], metric, data, force=force, name=unique_name
        )
        assert out["version"] == version and out["alias"] == alias
        assert out["previous_champion"] == previous and reason in out["reason"]
        info = champion_info(client, unique_name)
        assert info["version"] == int(champion)
        previous = info["version"]
        aliases = client.get_registered_model(unique_name).aliases
        assert int(aliases["champion"]) == int(champion)
        if alias == "challenger":
            assert int(aliases["challenger"]) == version
    assert info == {
        "version": 7,
        "run_id": logged["run_id"],
        "metric": 0.2,
        "metric_name": "val_predcls_R@20",
        "data_md5": NEW,
        "can_predict": False,
    }
    tags = client.get_model_version(unique_name, "7").tags
    assert tags == {"data_md5": NEW, "metric_name": "val_predcls_R@20", "metric": "0.2"}


def test_a_version_that_can_predict_replaces_a_tied_champion_that_cannot(logged, unique_name):
    client = logged["tracker"].client
    register = lambda bundle: register_and_promote(  # noqa: E731
        client, logged["run_id"], logged["uri"], 0.5, OLD, name=unique_name, bundle=bundle)
    assert register(None)["alias"] == "champion"
    second = register(1)
    assert second["alias"] == "champion" and "no inference bundle" in second["reason"]
    assert champion_info(client, unique_name)["can_predict"] is True
    assert client.get_model_version(unique_name, "2").tags["inference_bundle"] == "1"
    assert register(1)["alias"] == "challenger"  # a tie with a champion that predicts


@pytest.mark.parametrize(
    ("champion", "metric", "metric_name", "alias"),
    [
        (
            {"version": 1, "metric": math.nan, "data_md5": OLD, "metric_name": "m"},
            0.1,
            "m",
            "champion",
        ),
        (
            {"version": 1, "metric": 0.5, "data_md5": OLD, "metric_name": "m"},
            math.inf,
            "m",
            "challenger",
        ),
        (
            {"version": 1, "metric": 0.5, "data_md5": OLD, "metric_name": "m"},
            0.9,
            "other",
            "challenger",
        ),
    ],
)
def test_promotion_edge_cases(champion: dict, metric: float, metric_name: str, alias: str) -> None:
    assert promotion(champion, metric, OLD, metric_name)[0] == alias


def test_resolve_loader() -> None:
    assert resolve_loader(LOADER) is load_directory_manifest
    with pytest.raises(ValueError, match="package.module:function"):
        resolve_loader("scenellm.tracking.registry.load_directory_manifest")


@pytest.mark.parametrize(
    ("data", "metric_name", "named", "not_named"),
    [
        (NEW, "m", ["data"], ["metric m"]),
        (OLD, "other", ["metric m vs other"], ["data"]),
        (NEW, "other", ["data", "metric m vs other"], []),
    ],
)
def test_not_comparable_reason_names_only_what_differs(data, metric_name, named, not_named):
    champion = {"version": 3, "metric": 0.5, "data_md5": OLD, "metric_name": "m"}
    alias, reason = promotion(champion, 0.9, data, metric_name)
    assert alias == "challenger" and reason.startswith("not comparable with champion v3 (")
    assert all(part in reason for part in named)
    assert not any(part in reason for part in not_named)
