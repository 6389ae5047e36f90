"""The embedded Prefect API of a CLI process: it answers, a flow runs against it, and it
never outlives its process (normal exit or SIGKILL); a configured server launches nothing;
a server that cannot start is one clear error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from scenellm.cli import embedded_api

CHILD = """
import json, os, sys, time, urllib.request
from pathlib import Path
from scenellm.cli.embedded_api import start_embedded_api, wait_for_embedded_api
api = start_embedded_api(Path(sys.argv[1]))
assert os.environ["PREFECT_API_URL"] == api.api_url
wait_for_embedded_api()
with urllib.request.urlopen(api.api_url + "/health", timeout=5) as reply:
    health = reply.status
from prefect import flow
@flow
def double(x: int) -> int:
    return 2 * x
print(json.dumps({"url": api.api_url, "pid": api.process.pid, "health": health,
                  "flow": double(21)}), flush=True)
if sys.argv[2] == "hang":
    time.sleep(600)
"""


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    return {**env, "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", **extra}


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/health", timeout=2)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def wait_until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_api_runs_a_flow_and_stops_with_its_process(tmp_path):
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "prefect"), "exit"],
                         env=child_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["health"] == 200 and report["flow"] == 42
    assert report["url"].startswith("http://127.0.0.1:")
    assert wait_until(lambda: gone(report["pid"]))
    assert refused(report["url"])


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_server_dies_with_a_killed_process(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "prefect"), "hang"],
                            env=child_env(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        report = json.loads(proc.stdout.readline())
        assert not gone(report["pid"]) and not refused(report["url"])
        proc.send_signal(signal.SIGKILL)  # no atexit handler runs
        proc.wait(timeout=30)
        assert wait_until(lambda: gone(report["pid"]))
        assert wait_until(lambda: refused(report["url"]))
    finally:
        proc.kill()
        proc.stdout.close()


def test_configured_server_launches_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded_api, "_api", None)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert embedded_api.start_embedded_api(tmp_path) is None
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    embedded_api.wait_for_embedded_api()  # nothing to wait for
    assert not (tmp_path / "embedded-api.log").exists()


def test_server_that_cannot_start_is_one_clear_error(tmp_path):
    # nothing listens on port 1: the server's startup (database migration) fails, uvicorn
    # exits with its startup-failure code, and after the retries the error names the log
    broken = child_env(tmp_path, PREFECT_API_DATABASE_CONNECTION_URL=(
        "postgresql+asyncpg://nobody@127.0.0.1:1/none"))
    code = ("import sys; from pathlib import Path; "
            "from scenellm.errors import UserError; "
            "from scenellm.cli.embedded_api import start_embedded_api, wait_for_embedded_api; "
            "start_embedded_api(Path(sys.argv[1]))\n"
            "try:\n    wait_for_embedded_api()\n"
            "except UserError as exc:\n    print('ERROR', exc)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "prefect")],
                         env=broken, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("ERROR the embedded Prefect API exited with code 3; see ")
    log = Path(line.rsplit("see ", 1)[1])
    assert log == tmp_path / "prefect" / "embedded-api.log" and log.stat().st_size > 0
