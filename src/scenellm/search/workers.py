"""Extra worker processes on this machine (``scenellm tune --workers K``).

Each is ``scenellm tune --worker`` with the same study, trial count, params and search
file, so it joins the study exactly as a worker on another machine would. The storage
travels in ``$SCENELLM_OPTUNA_STORAGE`` (not the command line, where a database password
would show in ``ps``). Output goes to ``<home>/studies/<name>/worker-<i>.log``.

The launching process waits for them; if it fails or is interrupted it stops them with
SIGINT (their running trials end as failed runs). If it is killed outright they go on and
finish the study on their own, like any other worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scenellm.search.storage import resolve_target
from scenellm.search.study import TuneRequest


def worker_command(request: TuneRequest, n_trials: int, index: int) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "scenellm.cli.main",
        "tune",
        "--worker",
        "--study",
        request.study,
        "--trials",
        str(n_trials),
        "--worker-index",
        str(index),
    ]
    if request.search_file:
        cmd += ["--search", str(Path(request.search_file).resolve())]
    if request.params_dir:
        cmd += ["--params", str(Path(request.params_dir).resolve())]
    for item in request.overrides:
        cmd += ["--set", item]
    return cmd


@dataclass
class WorkerPool:
    """Started worker processes; :meth:`wait` for them, or :meth:`interrupt` them."""

    logs: list[Path] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)
    handles: list[IO[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, request: TuneRequest, n_trials: int, count: int) -> WorkerPool:
        pool = cls()
        log_dir = request.project.home / "studies" / request.study
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "SCENELLM_OPTUNA_STORAGE": resolve_target(request.storage, request.project),
        }
        for index in range(1, count + 1):
            log = log_dir / f"worker-{index}.log"
            handle = open(log, "ab")
            pool.logs.append(log)
            pool.handles.append(handle)
            # Own session: a Ctrl-C in the terminal reaches them once, through interrupt().
            pool.procs.append(
                subprocess.Popen(
                    worker_command(request, n_trials, index),
                    cwd=request.project.root,
                    env=env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return pool

    def wait(self) -> list[dict]:
        codes = [proc.wait() for proc in self.procs]
        for handle in self.handles:
            handle.close()
        return [
            {"index": i + 1, "pid": p.pid, "returncode": c, "log": str(log)}
            for i, (p, c, log) in enumerate(zip(self.procs, codes, self.logs, strict=True))
        ]

    def interrupt(self, grace_seconds: float = 30.0) -> None:
        """SIGINT (their running trials are marked failed, MLflow runs KILLED), then
        SIGKILL whatever is still alive after ``grace_seconds``."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.wait()
