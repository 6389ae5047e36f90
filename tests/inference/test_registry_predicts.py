"""The registered champion predicts: loaded by name in a fresh process it returns, for a test
video, exactly the ranked triplets the evaluate stage scored (PREDCLS, SGCLS, and SGDET from
its own detection head); it carries its signature, an input example and everything inference
needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from scenellm.data import vocab
from scenellm.inference.scene_graphs import OUTPUT_COLUMNS

SCRIPT = """
import sys
import mlflow
import pandas as pd

requests = pd.read_json(sys.argv[1], orient="records")
out = mlflow.pyfunc.load_model("models:/scenellm@champion").predict(requests)
out.to_parquet(sys.argv[2], index=False)
"""


def fresh_process_predict(champion, requests: pd.DataFrame, tmp: Path) -> pd.DataFrame:
    requests.to_json(tmp / "requests.json", orient="records")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp / "requests.json"),
                           str(tmp / "out.parquet")], env=champion.env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_parquet(tmp / "out.parquet")


def test_champion_in_a_fresh_process_predicts_what_evaluate_scored(champion, tmp_path):
    video = champion.test_videos()[0]
    modes = ["predcls", "sgcls", "sgdet"]
    requests = pd.DataFrame({"data_root": str(champion.data), "video": video, "mode": modes})
    got = fresh_process_predict(champion, requests, tmp_path)
    expected = pd.concat([champion.scored(video, mode) for mode in modes], ignore_index=True)
    assert set(expected["mode"]) == set(modes)
    assert len(expected) > 0 and list(got.columns) == list(OUTPUT_COLUMNS)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_predictions_are_ranked_per_frame_one_predicate_per_pair_and_kind(champion):
    video = champion.test_videos()[0]
    table = champion.scored(video, "predcls")
    for _, frame in table.groupby("frame_index"):
        assert frame["rank"].tolist() == list(range(len(frame)))
        assert (frame["score"].diff().dropna() <= 0).all()  # best first
        per_pair = frame.groupby(["object_index", "kind"]).size()
        assert (per_pair == 1).all()  # with constraint: the argmax of each row
        assert set(frame["kind"]) == {"attention", "spatial", "contacting"}
    spatial = table[table["kind"] == "spatial"]
    assert (spatial["object"] == "person").all() and (spatial["subject"] != "person").all()
    assert set(table["predicate"]) <= set(vocab.PREDICATES)


def test_unknown_mode_or_missing_column_is_refused(champion):
    from scenellm.errors import PredictionRequestError
    from scenellm.tracking.models import load_predictor

    predictor, _ = load_predictor("scenellm@champion", champion.tracking_uri)
    video = champion.test_videos()[0]
    with pytest.raises(PredictionRequestError, match="choose one of predcls, sgcls, sgdet"):
        predictor.predict(pd.DataFrame({"data_root": [str(champion.data)], "video": [video],
                                        "mode": ["detect"]}))
    with pytest.raises(PredictionRequestError, match="missing data_root"):
        predictor.predict(pd.DataFrame({"video": [video]}))


def test_logged_model_carries_signature_example_and_bundle(champion, tmp_path):
    import mlflow

    uri = "models:/scenellm@champion"
    mlflow.set_tracking_uri(champion.tracking_uri)
    try:
        info = mlflow.models.get_model_info(uri)
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path)))
    finally:
        mlflow.set_tracking_uri(None)
    assert info.signature.inputs.input_names() == ["data_root", "video", "mode"]
    assert info.signature.outputs.input_names() == list(OUTPUT_COLUMNS)
    example = pd.read_json(local / "input_example.json", orient="split")
    assert example.loc[0, "video"] in champion.test_videos()
    bundle = local / "artifacts" / "bundle"
    for name in ("bundle.json", "model/config.json", "model/weights.safetensors",
                 "model/vqvae", "model/llm", "detector/detector.safetensors"):
        assert (bundle / name).exists(), name
    assert not list(local.rglob("*.pkl"))  # models from code: nothing is unpickled on load
    from mlflow import MlflowClient

    tags = MlflowClient(champion.tracking_uri).get_model_version("scenellm",
                                                                 str(champion.version)).tags
    assert tags["inference_bundle"] == "1" and tags["finetune_fingerprint"]
