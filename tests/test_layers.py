"""Layers point down (DESIGN §3): flows/, cli/ → stages/, search/, audit/ → tracking/,
inference/ → model/, evaluation/, features/, data/ → shared utilities (io, device, config, errors,
project). Every ``scenellm`` import of every module is read statically (top-level,
function-level and ``TYPE_CHECKING`` imports alike) and none may point to a higher layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "scenellm"
LAYERS = {
    "cli": 4,
    "stages": 3, "search": 3, "audit": 3, "ablation": 3,
    "tracking": 2, "inference": 2,
    "model": 1, "evaluation": 1, "features": 1, "data": 1,
    "io": 0, "device": 0, "distributed": 0, "memory": 0, "faults": 0, "config": 0, "errors": 0, "project": 0, "progress": 0,
    "__init__": 0,
}


def layer_of(module: str) -> tuple[str, int]:
    """``scenellm.a.b`` → ("a", rank); unknown top-level names fail loudly."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYERS:
        raise AssertionError(f"{module}: package 'scenellm.{top}' has no layer in LAYERS")
    return top, LAYERS[top]


def scenellm_imports(source: str, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import of a ``scenellm`` module in ``source``;
    relative imports are resolved against ``module``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("scenellm")]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")[: -node.level]
                target = ".".join([*base, target] if target else base)
            if target == "scenellm":  # from scenellm import io → the module scenellm.io
                found += [(node.lineno, f"scenellm.{a.name}") for a in node.names]
            elif target.startswith("scenellm."):
                found.append((node.lineno, target))
    return found


def upward_imports(package: Path) -> list[str]:
    """``file:line: a (layer) imports b (higher layer)`` for every violation under
    ``package`` (the folder of ``scenellm`` or a copy of it)."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        own_name, own = layer_of(module)
        for line, imported in scenellm_imports(path.read_text(), module):
            name, rank = layer_of(imported)
            if rank > own:
                problems.append(f"{path.relative_to(package.parent)}:{line}: {own_name} "
                                f"(layer {own}) imports {imported} (layer {rank})")
    return problems


def test_every_package_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert tops <= set(LAYERS), f"give these a layer: {sorted(tops - set(LAYERS))}"


def test_no_module_imports_a_higher_layer():
    assert upward_imports(PACKAGE) == []


@pytest.mark.parametrize("statement", [
    "from scenellm.stages.vqvae import load_trained",
    "import scenellm.tracking.runs",
    "from scenellm import stages",
    "from ..stages import base",
])
def test_an_upward_import_is_caught(tmp_path: Path, statement: str):
    """The check fails on a synthetic model module that imports upwards, in each form."""
    package = tmp_path / "scenellm"
    (package / "model").mkdir(parents=True)
    (package / "stages").mkdir()
    for init in (package / "__init__.py", package / "model" / "__init__.py",
                 package / "stages" / "__init__.py"):
        init.write_text("")
    (package / "model" / "checkpoint.py").write_text(
        f"def load():\n    {statement}\n")
    problems = upward_imports(package)
    assert len(problems) == 1 and problems[0].startswith("scenellm/model/checkpoint.py:2: model")


def test_flows_import_only_through_the_library():
    """Flows are recipes: they may import any layer, but no private module of it."""
    for path in (ROOT / "flows").glob("*.py"):
        for line, imported in scenellm_imports(path.read_text(), f"flows.{path.stem}"):
            assert not any(part.startswith("_") for part in imported.split(".")), \
                f"{path.name}:{line} imports private {imported}"
