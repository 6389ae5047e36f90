"""A Prefect server, a process worker on a `gpu` pool, and `train` routing its GPU stages
through that worker (the routed stages are computed by the worker's process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from tiny_project import make_project

from scenellm.data.synth import generate

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {seconds}s")


@pytest.fixture
def postgres_db():
    """A fresh PostgreSQL database for the Prefect server, dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"scenellm_prefect_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc}")
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


@pytest.fixture
def prefect_server(tmp_path, postgres_db):
    """`prefect server start` backed by PostgreSQL."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": postgres_db,
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_LOGGING_LEVEL": "INFO"}
    server = subprocess.Popen([BIN / "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/health")
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_train_routes_gpu_stages_through_a_worker(tmp_path, prefect_server):
    env = prefect_server
    data = tmp_path / "data"
    generate(data, seed=5, videos=8, frames=5, size=(96, 72))
    root = tmp_path / "project"
    make_project(root, data, {"orchestration": {"gpu_pool": "gpu"}})
    subprocess.run([BIN / "prefect", "work-pool", "create", "gpu", "--type", "process"],
                   env=env, check=True, capture_output=True)
    deploy = ("from prefect import flow; flow.from_source(source='.', entrypoint="
              "'flows/stage.py:stage').deploy(name='gpu', work_pool_name='gpu')")
    subprocess.run([sys.executable, "-c", deploy], cwd=root, env=env, check=True,
                   capture_output=True)
    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([BIN / "prefect", "worker", "start", "--pool", "gpu", "--type",
                               "process"], cwd=root, env=env, stdout=worker_log,
                              stderr=subprocess.STDOUT)
    try:
        run = subprocess.run([BIN / "scenellm", "run"], cwd=root, env=env,
                             capture_output=True, text=True, timeout=900)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a Prefect worker can hang in its own shutdown
            worker.kill()
            worker.wait()
        worker_log.close()
    log = (tmp_path / "worker.log").read_text()
    assert run.returncode == 0, run.stderr[-3000:] + log[-3000:]

    stages = root / ".scenellm" / "artifacts" / "stages"
    by = {name: json.loads(next((stages / name).glob("*/_SUCCESS.json")).read_text())
          ["computed_by"]["pid"] for name in ("features", "vqvae", "finetune", "evaluate")}
    # each routed stage ran in a worker subprocess; evaluate ran in the parent flow
    assert all(by[s] != by["evaluate"] for s in ("features", "vqvae", "finetune")), (
        f"{by}\n{run.stdout[-2000:]}\n{log[-3000:]}")

    api = env["PREFECT_API_URL"]
    runs = httpx.post(f"{api}/flow_runs/filter", json={
        "deployments": {"name": {"any_": ["gpu"]}}}, timeout=10).json()
    assert sorted(r["parameters"]["name"] for r in runs) == ["features", "finetune", "vqvae"]
    assert {r["state_type"] for r in runs} == {"COMPLETED"}
    assert "scenellm run" in run.stdout and "registry" in run.stdout
