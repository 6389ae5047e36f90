"""Shared pieces of the pipeline benchmarks: machine facts, timers, isolated child
processes, tiny projects, tables and JSON reports.

Every benchmark runs in a temporary folder: synthetic data, project roots and stores
(``SCENELLM_HOME``, Prefect's and MLflow's databases) live there and are removed at the end,
so nothing touches the repository's own ``.scenellm/`` or ``data/``.
"""

from __future__ import annotations

import json
import os
import platform
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
SCENELLM = PYTHON.parent / "scenellm"
sys.path.insert(0, str(REPO / "tests" / "support"))

from tiny_project import TINY, make_project  # noqa: E402  (re-exported for the benches)

__all__ = ["TINY", "make_project"]

# variables that would point a child at stores outside its temp folder
REDIRECTS = (
    "SCENELLM_HOME",
    "MLFLOW_TRACKING_URI",
    "PREFECT_API_URL",
    "PREFECT_HOME",
    "SCENELLM_OPTUNA_STORAGE",
)
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def shipped_sizes() -> dict:
    """Overrides for :func:`make_project` that undo the tiny sizes: every value ``TINY``
    shrinks, back to what the repository's ``params/*.yaml`` ship."""
    import yaml

    shipped = {}
    for path in (REPO / "params").glob("*.yaml"):
        shipped.update(yaml.safe_load(path.read_text()))
    return {section: {k: shipped[section][k] for k in keys} for section, keys in TINY.items()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """What the numbers depend on: cores, CPU, load when measured, library versions."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average_1m": os.getloadavg()[0],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """(best, all) wall seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


@dataclass
class Child:
    """One finished child process: wall and CPU seconds, peak RSS, exit status, output."""

    wall_s: float
    cpu_s: float  # user + system of the child and the children it waited for
    maxrss_mb: float
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Child:
        if self.returncode != 0:
            raise SystemExit(f"{what} failed ({self.returncode}):\n{self.stderr[-3000:]}")
        return self

    def summary(self) -> dict:
        out = asdict(self)
        del out["stdout"], out["stderr"]
        return out


def child_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment without store redirections, analytics off, ``SCENELLM_HOME=home``."""
    env = {k: v for k, v in os.environ.items() if k not in REDIRECTS}
    env.update(QUIET)
    if home is not None:
        env["SCENELLM_HOME"] = str(home)
    env.update(extra)
    return env


# Linux keeps the ru_maxrss of a process across exec, and a child forked from a large
# process starts out that large; a tiny launcher in between makes the peak the command's own.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as report:
    json.dump({"wall_s": time.perf_counter() - start,
               "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, report)
"""


def run_child(
    cmd: Sequence[str | Path], cwd: Path, env: dict[str, str], timeout: float = 3600
) -> Child:
    """Run ``cmd`` through :data:`LAUNCHER` and collect the resource usage of that command
    alone with ``wait4``: wall and CPU seconds (its waited-for children included) and peak
    RSS (unlike ``RUSAGE_CHILDREN`` of this process, which keeps the maximum over all
    children ever run)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = Path(tmp) / "usage.json"
        launcher = [PYTHON, "-I", "-S", "-c", LAUNCHER, report, *cmd]
        proc = subprocess.Popen(
            [str(c) for c in launcher],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if not report.exists():
            return Child(timeout, 0.0, 0.0, proc.returncode or -signal.SIGKILL, stdout, stderr)
        usage = json.loads(report.read_text())
        return Child(
            usage["wall_s"],
            usage["cpu_s"],
            usage["maxrss_kb"] / 1024,
            usage["returncode"],
            stdout,
            stderr,
        )


def python_child(code: str, cwd: Path, env: dict[str, str], timeout: float = 3600) -> Child:
    return run_child([PYTHON, "-c", code], cwd, env, timeout)


def synth_data(out: Path, videos: int, frames: int, size: tuple[int, int], seed: int) -> Path:
    """Seeded synthetic Action Genome data at ``out`` (generated once)."""
    from scenellm.data.synth import generate

    if not (out / "annotations").is_dir():
        generate(out, seed=seed, videos=videos, frames=frames, size=size)
    return out


def profile_top(
    path: Path, limit: int = 15, sort: str = "cumulative", include: Sequence[str] = ()
) -> list[dict]:
    """The ``limit`` heaviest functions of a cProfile dump, as plain rows; with ``include``,
    only functions whose ``file:line(name)`` contains one of those strings."""
    stats = pstats.Stats(str(path))
    rows = []
    for func, (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        where = f"{func[0]}:{func[1]}({func[2]})"
        if include and not any(s in where for s in include):
            continue
        rows.append(
            {
                "function": f"{Path(func[0]).name}:{func[1]}({func[2]})",
                "calls": ncalls,
                "tottime_s": round(tottime, 3),
                "cumtime_s": round(cumtime, 3),
            }
        )
    key = "cumtime_s" if sort == "cumulative" else "tottime_s"
    return sorted(rows, key=lambda r: -r[key])[:limit]


def print_table(rows: list[dict], columns: Sequence[str], title: str = "") -> None:
    """Plain aligned table; floats with 3 significant decimals."""

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    if title:
        print(title)
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for b in body:
        print("  ".join(v.rjust(w) for v, w in zip(b, widths, strict=True)))


def write_json(path: Path | None, payload: dict) -> None:
    """Write ``payload`` plus ``machine`` facts to ``path`` (no-op when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**payload, "machine": machine_info()}, indent=2, default=str))
    print(f"wrote {path}")


def add_pipeline_args(parser) -> None:
    """The synthetic data and epoch options the pipeline benches share."""
    parser.add_argument("--frames", type=int, default=16, help="frames per video")
    parser.add_argument("--size", type=int, nargs=2, default=(160, 120), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector-epochs", type=int, default=1)
    parser.add_argument("--vqvae-epochs", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, nargs=2, default=(1, 1),
                        metavar=("B", "C"), help="phase (b) and (c) epochs")
