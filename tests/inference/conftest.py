"""One tiny trained and registered pipeline shared by the inference tests (built once per
session, ~20 s): synthetic data, every stage computed with tiny params, the fine-tuned model
registered as ``scenellm@champion`` in the project's own MLflow SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from tiny_project import make_project

from scenellm.project import Project

PYTHON = sys.executable
SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class Champion:
    project: Project
    data: Path
    evaluate: Path  # the evaluate stage's output folder
    features: Path
    finetune: Path
    prepare: Path
    version: int
    run_id: str

    @property
    def tracking_uri(self) -> str:
        return self.project.mlflow_tracking_uri

    def scored(self, video: str, mode: str) -> pd.DataFrame:
        """The triplets the evaluate stage scored for ``video`` in ``mode``."""
        table = pd.read_parquet(self.evaluate / "predictions.parquet")
        return table[(table["video"] == video) & (table["mode"] == mode)].reset_index(drop=True)

    def test_videos(self) -> list[str]:
        return sorted(pd.read_parquet(self.evaluate / "predictions.parquet")["video"].unique())

    def env(self) -> dict[str, str]:
        """A subprocess environment that sees this project only."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("SCENELLM_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
        env.update({"PYTHONPATH": str(SRC), "MLFLOW_TRACKING_URI": self.tracking_uri,
                    "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                    "PREFECT_HOME": str(self.project.home / "prefect"),
                    "PREFECT_LOGGING_LEVEL": "WARNING"})
        return env

    def scenellm(self, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        """``scenellm ARGS`` in a fresh process, from the project folder."""
        return subprocess.run([PYTHON, "-m", "scenellm.cli.main", *args], cwd=self.project.root,
                              env=self.env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    from scenellm.config.load import load_params
    from scenellm.data.synth import generate
    from scenellm.stages.pipeline import PipelineRun
    from scenellm.stages.registry import PIPELINE

    base = tmp_path_factory.mktemp("champion")
    generate(base / "data", seed=11, videos=8, frames=5, size=(96, 72))
    project = make_project(base / "project", base / "data",
                           {"prepare": {"validate_data": False}, "detector": {"epochs": 1},
                            "detect": {"epochs": 1},
                            "evaluate": {"modes": ["predcls", "sgcls", "sgdet"]}})
    saved = os.environ.pop("SCENELLM_HOME", None), os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        with PipelineRun.open(project, load_params(project.params_dir), "train-test") as run:
            for name in PIPELINE:
                run.stage(name)
            registered = run.register()
    finally:
        for key, value in zip(("SCENELLM_HOME", "MLFLOW_TRACKING_URI"), saved, strict=True):
            if value is not None:
                os.environ[key] = value
    assert registered["alias"] == "champion"
    return Champion(project, base / "data", run.results["evaluate"].path,
                    run.results["features"].path, run.results["finetune"].path,
                    run.results["prepare"].path, registered["version"], run.parent_id)
