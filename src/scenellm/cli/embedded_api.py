"""Prefect's API for one CLI process when no server is configured, started before anything
heavy is imported.

Prefect's ephemeral mode (``PREFECT_API_URL`` unset) starts the same thing lazily: at the
first client call it imports ``prefect.server.api.server`` into the calling process (2.3 s
here, only to reach ``SubprocessASGIServer``), launches ``uvicorn`` on Prefect's server
app, and waits for ``/api/health`` (2.9 s, 7.4 s with a new database on 2 cores). Launching
that subprocess first and pointing ``PREFECT_API_URL`` at it lets the server boot on the
other core while this process imports torch and MLflow, and the server module is never
imported here. The command line and environment are Prefect's own
(``SubprocessASGIServer._run_uvicorn_command``); the server is stopped when the process
exits, and on Linux also when it dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from scenellm.errors import UserError

STARTUP_FAILED = 3  # uvicorn's exit code when startup fails (a taken port among others)
ATTEMPTS = 3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux), so a killed CLI
    leaves no server behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class EmbeddedAPI:
    """A Prefect API server subprocess on 127.0.0.1 that lives as long as this process."""

    def __init__(self, log_path: Path, startup_timeout: float) -> None:
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.process = self._launch()
        self.ready = False
        self.stopping = False
        atexit.register(self.stop)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> subprocess.Popen:
        import importlib.util

        # prefect's package folder without importing prefect (uvicorn --app-dir)
        prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect_dir.parent),
                 "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                     "PREFECT__SERVER_FINAL": "1"},
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )  # fmt: skip

    def wait(self) -> None:
        """Block until ``/api/health`` answers; a failed start (port taken since it was
        picked) is retried on a new port, ``ATTEMPTS`` times in all."""
        if self.ready:
            return
        attempts, deadline = 1, time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code == STARTUP_FAILED and attempts < ATTEMPTS:
                attempts += 1
                self.port = free_port()
                self.process = self._launch()
                os.environ["PREFECT_API_URL"] = self.api_url
                continue
            if code is not None:
                raise UserError(f"the embedded Prefect API exited with code {code}; see "
                                f"{self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=1) as reply:
                    if reply.status == 200:
                        self.ready = True
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        else:
            self.stop()
            raise UserError(f"the embedded Prefect API did not answer within "
                            f"{self.startup_timeout:.0f} s; see {self.log_path}")
    def died(self) -> bool:
        """True once the server process has exited (not stopped by us)."""
        return self.ready and self.process.poll() is not None

    def watch(self, interval: float = 0.5) -> None:
        """Once the server dies mid-run, silence logging: the engine's retries and
        tracebacks would bury the one line the command prints about it."""
        import logging
        import threading

        def watchdog() -> None:
            while not self.died():
                time.sleep(interval)
            if not self.stopping:
                logging.disable(logging.CRITICAL)
                # Prefect's internal loggers ignore logging.disable (their own isEnabledFor)
                for name in list(logging.root.manager.loggerDict):
                    if name.startswith("prefect"):
                        logging.getLogger(name).disabled = True

        threading.Thread(target=watchdog, name="embedded-api-watchdog", daemon=True).start()

    def stop(self) -> None:
        self.stopping = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_api: EmbeddedAPI | None = None


def start_embedded_api(prefect_home: Path, startup_timeout: float = 120.0) -> EmbeddedAPI | None:
    """Launch the server unless ``PREFECT_API_URL`` names one; set ``PREFECT_API_URL``.

    Call before importing prefect (its settings read the environment). Idempotent.
    """
    global _api
    if _api is None and not os.environ.get("PREFECT_API_URL"):
        _api = EmbeddedAPI(prefect_home / "embedded-api.log", startup_timeout)
        os.environ["PREFECT_API_URL"] = _api.api_url
        # the server is this installation's own Prefect: skip the client's version handshake
        os.environ.setdefault("PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED", "false")
        # a local server that refuses a connection is gone: one retry, not a minute of them
        os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "1")
    return _api


def wait_for_embedded_api() -> None:
    """Block until the server launched by :func:`start_embedded_api` answers (if any),
    then watch it."""
    if _api is not None:
        _api.wait()
        _api.watch()


def embedded_api() -> EmbeddedAPI | None:
    return _api
