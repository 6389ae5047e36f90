"""One MLflow SQLite store for all tracking tests: its first use costs ~8 s of migrations."""

from __future__ import annotations

import itertools

import pytest

_names = itertools.count()


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A fresh experiment / registered-model name per test, so tests sharing a store never
    see each other's runs or versions."""
    return f"{request.node.name}-{next(_names)}".replace("[", "-").replace("]", "")
