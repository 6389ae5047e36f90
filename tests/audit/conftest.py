"""A recorded train run to audit, shared by every audit test (built once per session).

Layout under one temp folder::

    repo/        project root, a git repository: params/, data.dvc, data/ (git-ignored)
    plain/       a second project root (not a repository) reading repo/data
    home/        SCENELLM_HOME of both: stage outputs and the MLflow SQLite store

The run in ``repo`` computes every stage (tiny params) and registers ``scenellm`` v1 as
champion; the run in ``plain`` reuses all of its stage outputs. ``repo`` has two commits:
the first records a wrong md5 in data.dvc, the second (the run's) the right one.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from scenellm.project import Project

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "prepare": {"validate_data": False},
    "detector": {"epochs": 0, "batch_size": 4},
    "detect": {"epochs": 1, "batch_size": 4},
    "vqvae": {"codebook_size": 16, "code_dim": 16, "hidden_dim": 32, "epochs": 2, "batch_size": 64},
    "model": {"d_model": 32},
    "ot": {"num_scene_tokens": 4},
    "finetune": {"phase_b_epochs": 1, "phase_c_epochs": 1},
}
GIT = ("git", "-c", "user.email=audit@test", "-c", "user.name=audit", "-c", "commit.gpgsign=false")


def make_project(root: Path, data: Path) -> Project:
    """tests/stages/test_pipeline_e2e.py's tiny project: the repo's params, shrunk."""
    shutil.copytree(REPO / "params", root / "params")
    for section, values in TINY.items():
        for path in (root / "params").glob("*.yaml"):
            content = yaml.safe_load(path.read_text())
            if section in content:
                content[section].update(values)
                path.write_text(yaml.safe_dump(content))
    data_file = root / "params" / "data.yaml"
    content = yaml.safe_load(data_file.read_text())
    content["data"]["root"] = str(data)
    data_file.write_text(yaml.safe_dump(content))
    return Project(root)


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def commit_data_dvc(root: Path, md5: str, message: str) -> str:
    (root / "data.dvc").write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": "data"}]}))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def record_run(project: Project, register: bool = False) -> str:
    """What the train flow does, without Prefect: a parent run, a child run per stage."""
    from scenellm.config.load import load_params
    from scenellm.stages.pipeline import PipelineRun
    from scenellm.stages.registry import PIPELINE

    with PipelineRun.open(project, load_params(project.params_dir), "train-test") as run:
        for name in PIPELINE:
            run.stage(name)
        if register:
            run.register()
    return run.parent_id


@dataclass
class Recorded:
    repo: Project
    plain: Project
    home: Path
    data: Path
    tracking_uri: str
    run_id: str  # the run in the git repository, registered as scenellm v1 @champion
    plain_run_id: str  # the same stages recorded from a folder outside any repository
    commits: tuple[str, str]  # (data.dvc with a wrong md5, the run's commit)

    def env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SCENELLM_HOME", str(self.home))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", self.tracking_uri)


def build_recorded(base: Path) -> Recorded:
    from scenellm.data.synth import generate
    from scenellm.data.version import dvc_md5

    home, repo_root = base / "home", base / "repo"
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    generate(repo_root / "data", seed=3, videos=8, frames=4, size=(96, 72))
    repo = make_project(repo_root, Path("data"))
    (repo_root / ".gitignore").write_text("/data\n")
    git(repo_root, "init", "-q")
    first = commit_data_dvc(repo_root, "0" * 32 + ".dir", "data.dvc with a wrong md5")
    second = commit_data_dvc(repo_root, dvc_md5(repo_root / "data"), "track data")
    plain = make_project(base / "plain", repo_root / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCENELLM_HOME", str(home))
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        run_id = record_run(repo, register=True)
        plain_run_id = record_run(plain)
    return Recorded(
        repo, plain, home, repo_root / "data", tracking_uri, run_id, plain_run_id, (first, second)
    )


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return build_recorded(tmp_path_factory.mktemp("audit"))


@pytest.fixture
def env(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """The recorded projects' SCENELLM_HOME and MLflow store for one test."""
    recorded.env(monkeypatch)
    return recorded
