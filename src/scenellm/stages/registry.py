"""The stages by name, in pipeline order; modules are imported only when used."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from scenellm.errors import UserError

PIPELINE = ("prepare", "features", "detect", "vqvae", "finetune", "evaluate")


def available() -> tuple[str, ...]:
    return tuple(name for name in PIPELINE if importlib.util.find_spec(
        f"scenellm.stages.{name}") is not None)


def stage_module(name: str) -> ModuleType:
    if name not in available():
        raise UserError(f"unknown stage '{name}'; choose one of: {', '.join(available())}.")
    return importlib.import_module(f"scenellm.stages.{name}")


def check_names(names) -> None:
    """Refuse, in one line, any name that is not a pipeline stage."""
    for name in names:
        stage_module(name)


def upstream_closure(name: str) -> list[str]:
    """``name`` and every stage it depends on, in execution order."""
    order: list[str] = []

    def visit(stage: str) -> None:
        for dep in stage_module(stage).SPEC.upstream:
            visit(dep)
        if stage not in order:
            order.append(stage)

    visit(name)
    return order
