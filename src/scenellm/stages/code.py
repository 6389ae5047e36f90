"""A stage's code identity, computed from what it imports (never a hand-kept list).

The code of a stage is the transitive closure of the ``scenellm`` modules its entry module
imports, read statically: every ``import``/``from … import`` anywhere in a module (top level,
inside functions, under ``TYPE_CHECKING``), the ``__init__.py`` of every package on the way
(Python runs them on import), and module names written as string constants
(``"scenellm.evaluation.evaluator"`` in a lazy-export table). Its hash is

    sha256 over sorted (relative path, file bytes) of the closure + declared extra files.
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/scenellm
_MODULE_NAME = re.compile(r"^scenellm(\.[A-Za-z_]\w*)+$")


def module_path(module: str, package_root: Path = PACKAGE_ROOT) -> Path | None:
    """The file of ``scenellm.a.b`` under ``package_root``, or None if it is no module."""
    parts = module.split(".")[1:]
    if not parts:
        return package_root / "__init__.py"
    rel = Path(*parts)
    for candidate in (package_root / rel.with_suffix(".py"), package_root / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, package_root: Path) -> str:
    rel = path.relative_to(package_root.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def imported_modules(path: Path, package_root: Path = PACKAGE_ROOT) -> set[str]:
    """Every ``scenellm`` module ``path`` may import (module docstring)."""
    module = _module_name(path, package_root)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "scenellm"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parts = parts if is_package else parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] != "scenellm":
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # submodules imported by name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _MODULE_NAME.match(node.value):
            found.add(node.value)
    return {m for m in found if module_path(m, package_root) is not None}


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _tree_signature(package_root: Path) -> tuple:
    """(path, mtime, size) of every module: an edit that adds an import changes it."""
    return tuple((str(p), st.st_mtime_ns, st.st_size) for p in sorted(package_root.rglob("*.py"))
                 for st in (p.stat(),))


@lru_cache(maxsize=64)
def _closure(entry: str, package_root: Path, signature: tuple) -> tuple[Path, ...]:
    seen: set[str] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        for name in _with_parents(module):
            if name in seen or module_path(name, package_root) is None:
                continue
            seen.add(name)
            todo.extend(imported_modules(module_path(name, package_root), package_root))
    return tuple(sorted(module_path(m, package_root) for m in seen))


def code_closure(entry: str, package_root: Path = PACKAGE_ROOT) -> list[Path]:
    """Sorted files of ``entry``'s import closure (module docstring)."""
    if module_path(entry, package_root) is None:
        raise ValueError(f"{entry}: no such module under {package_root}")
    root = Path(package_root).resolve()
    return list(_closure(entry, root, _tree_signature(root)))


def code_hash(entry: str, extra: tuple[str, ...] = (),
              package_root: Path = PACKAGE_ROOT) -> str:
    """sha256 of ``entry``'s code closure plus ``extra`` files (paths relative to the
    package root), each as its relative path and bytes."""
    package_root = Path(package_root).resolve()
    digest = hashlib.sha256()
    files = set(code_closure(entry, package_root)) | {package_root / e for e in extra}
    for path in sorted(files):
        digest.update(path.relative_to(package_root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()
