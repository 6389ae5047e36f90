"""Where a project keeps its state: one git-ignored folder holding every embedded store.

``<root>/.scenellm/`` (or ``$SCENELLM_HOME``) contains ``artifacts/`` (stage outputs keyed by
fingerprint), ``mlflow.db`` (MLflow on SQLite), ``optuna.journal`` (Optuna journal storage)
and ``prefect/`` (the database of the Prefect API a command starts for itself when no
server is configured, ``scenellm.cli.embedded_api``). Each store can be pointed elsewhere
with the usual variables (``MLFLOW_TRACKING_URI``, ``SCENELLM_OPTUNA_STORAGE``,
``PREFECT_API_URL``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def find_root(start: Path | None = None) -> Path:
    """The nearest folder above ``start`` holding ``params/`` (the project root)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params").is_dir():
            return folder
    return here


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        return cls(find_root(start))

    @property
    def home(self) -> Path:
        env = os.environ.get("SCENELLM_HOME")
        return Path(env).resolve() if env else self.root / ".scenellm"

    @property
    def params_dir(self) -> Path:
        return self.root / "params"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    def stage_dir(self, stage: str) -> Path:
        return self.artifacts / "stages" / stage

    @property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def optuna_storage(self) -> str:
        return os.environ.get("SCENELLM_OPTUNA_STORAGE") or str(self.home / "optuna.journal")

    @property
    def prefect_api_url(self) -> str | None:
        return os.environ.get("PREFECT_API_URL") or None

    def data_root(self, configured: str) -> Path:
        path = Path(configured)
        return path if path.is_absolute() else self.root / path
