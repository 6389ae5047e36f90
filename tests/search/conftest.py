"""A tiny project for study tests: 12 synthetic videos and the smallest sensible params.

Copied from the pipeline end-to-end test's approach (a private params/ folder per project,
overridden section by section); the search space is small enough that a trial fine-tunes
in a few seconds on CPU.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from scenellm.data.synth import generate
from scenellm.project import Project

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "prepare": {"validate_data": False},
    "detector": {"epochs": 1, "batch_size": 4},
    "detect": {"epochs": 1, "batch_size": 4},
    "vqvae": {"codebook_size": 16, "code_dim": 16, "hidden_dim": 32, "epochs": 2, "batch_size": 64},
    "model": {"d_model": 32},
    "ot": {"num_scene_tokens": 4, "max_iter": 20},
    "finetune": {"phase_b_epochs": 1, "phase_c_epochs": 1, "batch_videos": 4},
}
SEARCH = {
    "objective": {"metric": "val_predcls_R@20", "direction": "maximize"},
    "space": {
        "vqvae.codebook_size": {"type": "categorical", "choices": [8, 16]},
        "lora.rank": {"type": "categorical", "choices": [2, 4]},
        "ot.epsilon": {"type": "float", "low": 0.02, "high": 0.5, "log": True},
        "ot.num_scene_tokens": {"type": "int", "low": 2, "high": 4},
        "ot.max_iter": {"type": "int", "low": 10, "high": 30, "step": 10},
    },
    "fixed": {},
    "sampler": {"name": "TPESampler", "seed": 0, "n_startup_trials": 4},
    "pruner": {"name": "NopPruner"},
    "heartbeat": {"interval": 1, "grace_period": 4, "max_retry": 2},
}
_ids = itertools.count()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ag") / "data"
    generate(out, seed=3, videos=12, frames=6, size=(96, 72))
    return out


def write_project(root: Path, data: Path, search: dict | None = None) -> Project:
    """``root/params`` = the repository's params with :data:`TINY` applied and ``search``
    (default :data:`SEARCH`) as ``search.yaml``; the project keeps its state in
    ``root/.scenellm``."""
    shutil.copytree(REPO / "params", root / "params")
    for path in (root / "params").glob("*.yaml"):
        content = yaml.safe_load(path.read_text())
        if path.name == "search.yaml":
            content = search or SEARCH
        for section, values in TINY.items():
            if section in content:
                content[section].update(values)
        if "data" in content:
            content["data"]["root"] = str(data)
        path.write_text(yaml.safe_dump(content))
    (root / "params" / "search.yaml").write_text(yaml.safe_dump(search or SEARCH))
    return Project(root)


@pytest.fixture
def make_project(tmp_path: Path, dataset: Path) -> Callable[..., Project]:
    def make(search: dict | None = None) -> Project:
        return write_project(tmp_path / f"project{next(_ids)}", dataset, search)

    return make


@pytest.fixture(scope="session", autouse=True)
def project_stores_only() -> Iterator[None]:
    """Every store lives in the test project's own folder, whatever the environment says."""
    patch = pytest.MonkeyPatch()
    for name in (
        "SCENELLM_HOME",
        "MLFLOW_TRACKING_URI",
        "SCENELLM_OPTUNA_STORAGE",
        "PREFECT_API_URL",
    ):
        patch.delenv(name, raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def studied(tmp_path_factory: pytest.TempPathFactory, dataset: Path):
    """One project with a finished 3-trial study ``base`` (in-process, journal storage)."""
    from scenellm.search.optimize import run_worker
    from scenellm.search.study import TuneRequest

    project = write_project(tmp_path_factory.mktemp("studied"), dataset)
    summary = run_worker(TuneRequest("base", project), 3)
    return project, summary


def journal_study(project: Project, name: str):
    """The study as any reader sees it (plain journal storage, no heartbeat)."""
    import optuna

    backend = optuna.storages.journal.JournalFileBackend(str(project.home / "optuna.journal"))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        conn = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5
        )
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({exc})")
    conn.autocommit = True
    name = f"scenellm_optuna_{uuid.uuid4().hex[:12]}"
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def read_study():
    """``read_study(project, name)``: see :func:`journal_study`."""
    return journal_study


def tune_command(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "scenellm.cli.main", "tune", *args]


@pytest.fixture(scope="session")
def tune_cli():
    """``tune_cli(*args)``: the ``scenellm tune`` command line (for subprocesses)."""
    return tune_command
