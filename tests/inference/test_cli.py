"""``scenellm predict`` and ``scenellm show`` on the champion: files equal to what evaluate
scored, pictures of every frame, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from scenellm.cli.main import app


def boxes_as_lists(table: pd.DataFrame) -> pd.DataFrame:
    """Parquet reads list columns as arrays, JSON as lists: compare them as lists."""
    return table.assign(**{c: table[c].map(list) for c in ("subject_box", "object_box")})


def test_predict_writes_what_evaluate_scored_as_jsonl_and_parquet(champion, tmp_path):
    video = champion.test_videos()[0]
    for suffix in ("jsonl", "parquet"):
        out = tmp_path / f"pred.{suffix}"
        done = champion.scenellm("predict", "--data", str(champion.data), "--video", video,
                                 "--mode", "sgcls", "--out", str(out))
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"scenellm@champion v{champion.version}: 1 videos" in done.stderr
        assert "frames/s" in done.stderr
        got = (pd.read_parquet(out) if suffix == "parquet" else
               pd.DataFrame([json.loads(line) for line in out.read_text().splitlines()]))
        pd.testing.assert_frame_equal(boxes_as_lists(got),
                                      boxes_as_lists(champion.scored(video, "sgcls")),
                                      check_exact=True)


@pytest.fixture
def in_project(champion, monkeypatch):
    monkeypatch.chdir(champion.project.root)
    monkeypatch.delenv("SCENELLM_HOME", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return champion


def one_line_error(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, (result.output, result.exception)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_show_draws_every_frame_as_gif_and_html(in_project, tmp_path):
    from PIL import Image

    video = in_project.test_videos()[0]
    frames = in_project.scored(video, "predcls")["frame"].unique()
    result = CliRunner().invoke(app, ["show", "--data", str(in_project.data), "--video", video,
                                      "--out", str(tmp_path / "graph.gif")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "graph.gif") as gif:
        assert gif.n_frames == len(frames) and gif.width > 480
    result = CliRunner().invoke(app, ["show", "--data", str(in_project.data), "--video",
                                      video.removesuffix(".mp4"), "--top", "3",
                                      "--out", str(tmp_path / "graph.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "graph.html").read_text()
    assert page.count("<img") == len(frames)
    best = in_project.scored(video, "predcls").query("rank < 3")
    for row in best.itertuples():
        assert f"<td>{row.subject}</td><td>{row.predicate}</td><td>{row.object} " in page
    assert page.count("<tr>") == len(best)


def test_evaluate_draws_examples_and_logs_them(champion):
    from mlflow import MlflowClient

    gifs = sorted(p.name for p in (champion.evaluate / "examples").glob("*.gif"))
    assert gifs and len(gifs) <= 3
    client = MlflowClient(champion.tracking_uri)
    (child,) = [r for r in client.search_runs(
        [client.get_run(champion.run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{champion.run_id}' and tags.`scenellm.stage` = 'evaluate'")]
    logged = sorted(a.path for a in client.list_artifacts(child.info.run_id, "examples"))
    assert logged == [f"examples/{g}" for g in gifs]


def test_unknown_video_is_one_line(in_project):
    line = one_line_error("predict", "--data", str(in_project.data), "--video", "NOPE")
    assert "no video 'NOPE'" in line


def test_missing_data_root_is_one_line(in_project, tmp_path):
    line = one_line_error("predict", "--data", str(tmp_path / "nowhere"), "--video", "V")
    assert "not an Action Genome folder" in line


def test_missing_frame_is_one_line(in_project, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(in_project.data, data)
    frame = sorted((data / "frames").rglob("*.png"))[0]
    frame.unlink()
    line = one_line_error("predict", "--data", str(data), "--video", frame.parent.name)
    assert frame.name in line


@pytest.mark.parametrize(("args", "fragment"), [
    (("--mode", "detect"), "choose one of predcls, sgcls, sgdet"),
    (("--out", "x.csv"), "write .jsonl or .parquet"),
    (("--model", "scenellm@nobody"), "not found in the MLflow store"),
    (("--model", "nothing-like-a-model"), "not a folder, NAME@ALIAS"),
])
def test_bad_request_is_one_line(in_project, args, fragment):
    video = in_project.test_videos()[0]
    assert fragment in one_line_error("predict", "--data", str(in_project.data), "--video",
                                      video, *args)


def test_model_without_inference_artifacts_is_one_line(in_project, tmp_path):
    from scenellm.inference.bundle import write_bundle
    from scenellm.tracking.registry import log_model, register_and_promote
    from scenellm.tracking.runs import Tracker

    video = in_project.test_videos()[0]
    bundle = tmp_path / "bundle"  # a bundle that lost its detector weights
    write_bundle(bundle, in_project.finetune / "model", in_project.features, 3, 4)
    # without the detect stage's output the bundle has no detection head: no SGDET
    line = one_line_error("predict", "--model", str(bundle), "--data", str(in_project.data),
                          "--video", video, "--mode", "sgdet")
    assert "no detection head" in line and "evaluate.modes" in line
    (bundle / "detector" / "detector.safetensors").unlink()
    line = one_line_error("predict", "--model", str(bundle), "--data", str(in_project.data),
                          "--video", video)
    assert "no detector weights" in line
    # a version logged the way versions were before bundles: the fine-tuned folder alone
    tracker = Tracker(in_project.tracking_uri, "old-layout")
    run_id = tracker.start_parent("train-old", {}, {})
    uri = log_model(tracker.client, run_id, in_project.finetune / "model")
    register_and_promote(tracker.client, run_id, uri, 0.1, "d" * 32, name="old-layout")
    line = one_line_error("predict", "--model", "old-layout@champion", "--data",
                          str(in_project.data), "--video", video)
    assert "no bundle.json" in line and "register it again" in line
