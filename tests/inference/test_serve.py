"""``mlflow models serve -m models:/scenellm@champion --env-manager local`` on 127.0.0.1
answers ``/invocations`` with the triplets the evaluate stage scored (~10 s: the server
imports torch and MLflow and loads the model)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

MLFLOW = Path(sys.executable).parent / "mlflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited {server.returncode}: "
                                 f"{server.stderr.read().decode()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"no answer from {url}/ping within {timeout} s")


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_served_champion_answers_invocations_with_what_evaluate_scored(champion):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(MLFLOW), "models", "serve", "-m", "models:/scenellm@champion", "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=champion.env(), cwd=champion.project.root, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until_up(url, server)
        video = champion.test_videos()[-1]
        status, answer = post(url, {"dataframe_split": {
            "columns": ["data_root", "video", "mode"],
            "data": [[str(champion.data), video, "predcls"]]}})
        assert status == 200, answer
        got = pd.DataFrame(answer["predictions"])
        expected = champion.scored(video, "predcls")
        assert len(got) == len(expected) > 0
        expected = expected.assign(**{c: expected[c].map(list)
                                      for c in ("subject_box", "object_box")})
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)
        status, answer = post(url, {"dataframe_split": {
            "columns": ["data_root", "video"], "data": [[str(champion.data), "NOPE"]]}})
        assert status >= 400 and "no video 'NOPE'" in json.dumps(answer)
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """The server and its workers (its process group), by the server's PID."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    server.wait()
