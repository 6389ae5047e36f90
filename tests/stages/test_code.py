"""A stage's code hash follows what its module imports, computed on a copy of the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scenellm.stages.code import PACKAGE_ROOT, code_closure, code_hash
from scenellm.stages.registry import PIPELINE


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    copy = tmp_path / "scenellm"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def hashes(root: Path) -> dict[str, str]:
    return {s: code_hash(f"scenellm.stages.{s}", package_root=root) for s in PIPELINE}


def changed_after_editing(root: Path, rel: str) -> set[str]:
    before = hashes(root)
    with open(root / rel, "a") as handle:
        handle.write("\n# edited\n")
    after = hashes(root)
    return {s for s in PIPELINE if before[s] != after[s]}


def test_the_hash_depends_on_content_not_on_where_the_package_lives(package: Path):
    assert hashes(package) == hashes(PACKAGE_ROOT)


@pytest.mark.parametrize(("module", "stages"), [
    # the validation rules prepare imports inside its body
    ("data/expectations.py", {"prepare"}),
    # the feature streaming vqvae and finetune read (not features itself); evaluate imports
    # finetune's validation loop for its probes
    ("features/stream.py", {"vqvae", "finetune", "evaluate"}),
    ("model/sinkhorn.py", {"finetune", "evaluate"}),
    # SGDET's head and detections file: the detect stage alone
    ("features/detection_head.py", {"detect"}),
    ("data/detections.py", {"detect"}),
    ("evaluation/report.py", {"evaluate"}),
    # via a lazy-export string of scenellm.evaluation (detect: its detector metrics module)
    ("evaluation/evaluator.py", {"detect", "finetune", "evaluate"}),
    ("stages/base.py", set(PIPELINE)),
    ("io.py", set(PIPELINE)),
    ("search/report.py", set()),
    ("tracking/registry.py", set()),
    ("cli/main.py", set()),
])
def test_editing_a_module_changes_exactly_the_stages_that_import_it(package, module, stages):
    assert changed_after_editing(package, module) == stages


def test_a_new_import_brings_its_module_into_the_closure(package: Path):
    entry = "scenellm.stages.prepare"
    assert package / "search" / "report.py" not in code_closure(entry, package)
    with open(package / "stages" / "prepare.py", "a") as handle:
        handle.write("\n\ndef _late():\n    from scenellm.search import report  # noqa\n")
    closure = code_closure(entry, package)
    assert package / "search" / "report.py" in closure
    assert package / "search" / "__init__.py" in closure  # packages run on import
    before = code_hash(entry, package_root=package)
    with open(package / "search" / "report.py", "a") as handle:
        handle.write("\n# edited\n")
    assert code_hash(entry, package_root=package) != before


def test_declared_extra_files_count(package: Path):
    (package / "rules.yaml").write_text("a: 1\n")
    entry = "scenellm.stages.prepare"
    before = code_hash(entry, ("rules.yaml",), package)
    (package / "rules.yaml").write_text("a: 2\n")
    assert code_hash(entry, ("rules.yaml",), package) != before
