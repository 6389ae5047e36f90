"""DVC parity: dvc.yaml is what the stages declare, and the committed dvc.lock records the
code, params and data of this tree (regenerate both with `make lock`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from scenellm.stages.dvc import dvc_yaml
from scenellm.stages.registry import PIPELINE, stage_module

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def declared() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


@pytest.fixture(scope="module")
def lock() -> dict:
    return yaml.safe_load((REPO / "dvc.lock").read_text())


def test_dvc_yaml_is_generated_from_the_stages():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml(REPO), \
        "dvc.yaml differs from the stage declarations: run `scenellm dvc yaml`"


def test_every_stage_depends_on_its_upstream_outputs_and_reads_its_params(declared):
    for name in PIPELINE:
        spec = stage_module(name).SPEC
        stage = declared["stages"][name]
        assert [d for d in stage["deps"] if d.startswith("outputs/")] == \
            [f"outputs/{u}" for u in spec.upstream]
        sections = [s for entry in stage["params"] for f in entry.values() for s in f]
        assert sorted(sections) == sorted(spec.sections)
        assert f"src/scenellm/stages/{name}.py" in stage["deps"]


def test_no_dependency_is_bytecode_or_a_folder(declared):
    for stage in declared["stages"].values():
        for dep in stage["deps"]:
            assert "__pycache__" not in dep and not dep.endswith(".pyc")
            assert dep in ("data",) or dep.startswith("outputs/") or (REPO / dep).is_file()
    assert "__pycache__/" in (REPO / ".dvcignore").read_text().split()


def numbers(value):
    """DVC writes 1e-06 unquoted, which YAML 1.1 (PyYAML) reads back as a string."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", PIPELINE)
def test_the_committed_lock_records_this_tree(declared, lock, name):
    """Fails when code, params or the declared deps change without `make lock`."""
    entry, recorded = declared["stages"][name], lock["stages"][name]
    assert recorded["cmd"] == entry["cmd"]
    deps = {d["path"]: d for d in recorded["deps"]}
    assert sorted(deps) == sorted(entry["deps"]), "deps changed: run `make lock`"
    stale = [p for p in deps if p.startswith("src/") and deps[p]["md5"] != md5(REPO / p)]
    assert not stale, f"code changed since dvc.lock was written: {stale[:3]} (`make lock`)"
    if "data" in deps:
        data_dvc = yaml.safe_load((REPO / "data.dvc").read_text())
        assert deps["data"]["md5"] == data_dvc["outs"][0]["md5"]
    for params_entry in entry["params"]:
        for file, sections in params_entry.items():
            current = yaml.safe_load((REPO / file).read_text())
            assert numbers({s: current[s] for s in sections}) == \
                numbers(recorded["params"][file]), \
                f"{file} changed since dvc.lock was written (`make lock`)"


@pytest.mark.parametrize("name", PIPELINE)
def test_the_committed_metrics_are_the_ones_the_lock_records(lock, name):
    """Fails when a run (on another dataset, say: `scenellm run` writes the project's
    metrics/ wherever its data came from) leaves metrics/ disagreeing with dvc.lock."""
    outs = [o for o in lock["stages"][name].get("outs", []) if o["path"].startswith("metrics/")]
    for out in outs:
        path = REPO / out["path"]
        assert path.is_file(), f"{out['path']} is recorded in dvc.lock but missing"
        assert md5(path) == out["md5"], \
            f"{out['path']} differs from dvc.lock (`git checkout metrics/` or `make lock`)"
