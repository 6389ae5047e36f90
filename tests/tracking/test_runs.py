"""Parent / child runs on a real MLflow SQLite store."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from scenellm.config.load import flatten
from scenellm.config.schema import Params
from scenellm.data.version import dvc_md5
from scenellm.stages.base import StageResult
from scenellm.tracking.lineage import parse_lineage
from scenellm.tracking.runs import Tracker, metric_key, sqlite_artifact_root


@pytest.fixture
def tracker(tracking_uri: str, unique_name: str) -> Tracker:
    return Tracker(tracking_uri, unique_name)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("R@20", "R_at_20"),
        ("predcls_mR@50_frame", "predcls_mR_at_50_frame"),
        ("loss/train", "loss/train"),
        ("a b:c-d.e", "a b:c-d.e"),
        ("x%y", "x_y"),
    ],
)
def test_metric_key(name: str, key: str) -> None:
    assert metric_key(name) == key


def test_sqlite_artifact_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_artifact_root("sqlite:////srv/x/mlflow.db") == "file:///srv/x/mlartifacts"
    assert sqlite_artifact_root("sqlite:///rel/mlflow.db?timeout=5") == (
        (tmp_path / "rel" / "mlartifacts").as_uri()
    )
    assert sqlite_artifact_root("http://127.0.0.1:5000") is None


def test_parent_params_flattened_and_full_copy(tracker: Tracker) -> None:
    params = {
        **flatten(Params()),
        "search": {"space": {"lora.rank": [4, 8]}},
        "note": "n" * (MAX_PARAM_VAL_LENGTH + 10),
        "flag": True,
    }
    run_id = tracker.start_parent("pipeline", {"scenellm.study": "s"}, params)
    run = tracker.client.get_run(run_id)
    assert run.info.experiment_id == tracker.experiment_id
    db = Path(tracker.tracking_uri.removeprefix("sqlite:///"))
    assert run.info.artifact_uri.startswith((db.parent / "mlartifacts").as_uri() + "/")
    assert run.data.tags["scenellm.study"] == "s"
    assert run.data.params["vqvae.codebook_size"] == str(Params().vqvae.codebook_size)
    assert run.data.params["search.space.lora.rank"] == "[4, 8]"
    assert run.data.params["flag"] == "true"
    assert run.data.params["note"] == "n" * MAX_PARAM_VAL_LENGTH
    reference = pandas.json_normalize(params, sep=".").iloc[0].to_dict()  # nested → dotted
    assert run.data.params.keys() == reference.keys()
    full = json.loads(Path(tracker.client.download_artifacts(run_id, "params.json")).read_text())
    assert full["note"] == params["note"] and full["search.space.lora.rank"] == [4, 8]


def test_children_metrics_artifacts_and_dataset(tracker: Tracker, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "annotations").mkdir(parents=True)
    (data / "annotations" / "frame_list.txt").write_text("a.mp4/000001.png\n")
    md5 = dvc_md5(data)

    parent = tracker.start_parent("pipeline", {}, {})
    tracker.log_dataset(parent, "action_genome", data, md5)
    stage_dir = tmp_path / "out"
    (stage_dir / "validation").mkdir(parents=True)
    (stage_dir / "validation" / "report.json").write_text("{}")
    (stage_dir / "metrics.json").write_text("{}")
    (stage_dir / "loss.png").write_bytes(b"\x89PNG")
    result = StageResult(
        "vqvae",
        "f" * 64,
        stage_dir,
        False,
        2.25,
        "h" * 64,
        {"recon": 0.5, "eval": {"R@20": 0.7}, "bad": float("nan"), "name": "x", "ok": True},
    )
    children = {}
    for stage in ("prepare", "vqvae"):
        children[stage] = tracker.start_child(parent, stage, {"scenellm.trial": "0"})
    for step, loss in enumerate([1.0, 0.5, float("inf"), 0.25]):
        tracker.log_metrics(children["vqvae"], {"loss": loss}, step=step)
    tracker.log_stage(
        children["vqvae"],
        result,
        [stage_dir / "loss.png", stage_dir / "metrics.json", stage_dir / "validation"],
    )
    for run_id in (*children.values(), parent):
        tracker.end(run_id)

    client = tracker.client
    for stage, run_id in children.items():
        run = client.get_run(run_id)
        assert run.data.tags[MLFLOW_PARENT_RUN_ID] == parent
        assert run.info.run_name == stage and run.info.status == "FINISHED"
    history = client.get_metric_history(children["vqvae"], "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (3, 0.25)]
    vqvae = client.get_run(children["vqvae"]).data
    assert vqvae.metrics == {"loss": 0.25, "recon": 0.5, "eval.R_at_20": 0.7}
    assert parse_lineage(vqvae.tags)["stages"] == {
        "vqvae": {
            "fingerprint": "f" * 64,
            "output_hash": "h" * 64,
            "reused": False,
            "seconds": 2.25,
        }
    }
    listed = {a.path for a in client.list_artifacts(children["vqvae"])}
    assert listed == {"loss.png", "metrics.json", "validation"}
    assert [a.path for a in client.list_artifacts(children["vqvae"], "validation")] == [
        "validation/report.json"
    ]
    inputs = client.get_run(parent).inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.digest == md5 and inputs[0].dataset.name == "action_genome"
    assert json.loads(inputs[0].dataset.source) == {"uri": str(data.resolve())}
    assert {t.key: t.value for t in inputs[0].tags} == {"mlflow.data.context": "training"}
    with pytest.raises(FileNotFoundError, match="missing.png"):
        tracker.log_artifacts(parent, [tmp_path / "missing.png"])


def test_parent_run_context_ends_failed_on_error(tracker: Tracker) -> None:
    with tracker.parent_run("ok", {}, {}) as ok:
        pass
    with pytest.raises(RuntimeError), tracker.parent_run("boom", {}, {}) as failed:
        with tracker.child_run(failed, "prepare") as child:
            raise RuntimeError("stage broke")
    status = {r: tracker.client.get_run(r).info.status for r in (ok, failed, child)}
    assert status == {ok: "FINISHED", failed: "FAILED", child: "FAILED"}


def test_children_from_threads(tracker: Tracker, tracking_uri: str, unique_name: str) -> None:
    parent = tracker.start_parent("study", {}, {})

    def trial(i: int) -> str:
        own = Tracker(tracking_uri, unique_name)  # a worker builds its own tracker
        run_id = own.start_child(parent, f"trial-{i}")
        for step in range(3):
            own.log_metrics(run_id, {"value": i + step / 10}, step=step)
        own.end(run_id)
        return run_id

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(trial, range(8)))
    found = tracker.client.search_runs(
        [tracker.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'"
    )
    assert {r.info.run_id for r in found} == set(runs)
    assert {r.info.run_name: r.data.metrics["value"] for r in found} == {
        f"trial-{i}": i + 0.2 for i in range(8)
    }
