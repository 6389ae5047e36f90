"""Tracking through an MLflow server whose backend store is PostgreSQL (issue 7).

A fresh database on 127.0.0.1:5432, ``mlflow server`` proxying artifacts to a temp folder,
our :class:`Tracker` and registry against ``http://127.0.0.1:<port>``, read back by a new
client. Starting the server costs ~30 s (its migrations and app import).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HOST, PORT = "127.0.0.1", 5432
MD5 = "0123456789abcdef0123456789abcdef.dir"


def _admin_connection():
    """psycopg2 connection to the ``postgres`` database as the first user that works."""
    import psycopg2

    errors = []
    for user in ("postgres", "root"):
        try:
            conn = psycopg2.connect(
                host=HOST, port=PORT, user=user, dbname="postgres", connect_timeout=5
            )
        except psycopg2.OperationalError as exc:
            errors.append(f"{user}: {str(exc).strip()}")
            continue
        conn.autocommit = True
        return conn, user
    pytest.skip(f"PostgreSQL not reachable on {HOST}:{PORT} ({'; '.join(errors)})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    conn, user = _admin_connection()
    db = f"scenellm_mlflow_{uuid.uuid4().hex[:12]}"
    conn.cursor().execute(f'CREATE DATABASE "{db}"')
    root = tmp_path_factory.mktemp("mlflow-server")
    log = root / "server.log"
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"postgresql+psycopg2://{user}@{HOST}:{PORT}/{db}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # No GenAI job runner: it would spawn consumer processes this test does not need.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )  # its own group, stopped as one
    try:
        url = f"http://{HOST}:{port}"
        _wait_healthy(url, proc, log)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.close()


def test_runs_and_registry_through_a_postgres_backed_server(server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from scenellm.stages.base import StageResult
    from scenellm.tracking.lineage import parse_lineage
    from scenellm.tracking.registry import (
        load_directory_manifest,
        load_registered,
        log_model,
        register_and_promote,
    )
    from scenellm.tracking.runs import Tracker

    tracker = Tracker(server, "postgres-server")
    (tmp_path / "data").mkdir()
    (tmp_path / "metrics.json").write_text('{"R@20": 0.5}')
    model_dir = tmp_path / "finetuned"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"lora": {"rank": 8}}')

    parent = tracker.start_parent("pipeline", {"scenellm.data_md5": MD5}, {"lora": {"rank": 8}})
    tracker.log_dataset(parent, "action_genome", tmp_path / "data", MD5)
    child = tracker.start_child(parent, "finetune")
    for step, loss in enumerate([0.9, 0.4]):
        tracker.log_metrics(child, {"loss": loss}, step=step)
    tracker.log_stage(
        child,
        StageResult("finetune", "f" * 64, model_dir, False, 3.0, "h" * 64, {"R@20": 0.5}),
        [tmp_path / "metrics.json"],
    )
    uri = log_model(
        tracker.client,
        child,
        model_dir,
        loader="scenellm.tracking.registry:load_directory_manifest",
    )
    promoted = register_and_promote(tracker.client, child, uri, 0.5, MD5, name="scenellm-postgres")
    tracker.end(child)
    tracker.end(parent)

    client = MlflowClient(server)  # a new client reads everything back
    run = client.get_run(child)
    assert run.data.tags[MLFLOW_PARENT_RUN_ID] == parent and run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(child, "loss")] == [
        (0, 0.9),
        (1, 0.4),
    ]
    assert run.data.metrics["R_at_20"] == 0.5
    assert parse_lineage(run.data.tags)["stages"]["finetune"]["fingerprint"] == "f" * 64
    assert client.get_run(parent).data.params == {"lora.rank": "8"}
    assert client.get_run(parent).inputs.dataset_inputs[0].dataset.digest == MD5
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    metrics_file = client.download_artifacts(child, "metrics.json", str(tmp_path / "dl"))
    assert Path(metrics_file).read_text() == '{"R@20": 0.5}'
    assert promoted["alias"] == "champion"
    loaded = load_registered("champion", server, name="scenellm-postgres", dst=tmp_path / "model")
    assert loaded == load_directory_manifest(model_dir)
