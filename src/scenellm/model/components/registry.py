"""Components registered by name, one registry per model slot (like peft's method table).

A component is a module class built as ``Module(config, **widths)`` from a config dataclass
whose fields carry their help text (:func:`option`). ``params/model.yaml`` names it
(``model.spatial``, ``model.head``, ``model.fusion``) and may set its config fields
(``model.spatial_options`` …). A new component is one file plus one ``register`` line in its
slot's ``__init__``.

A component may report statistics (expert use, gate values) through ``diagnostics()`` and
``reset_diagnostics()``; :func:`collect_diagnostics` gathers them from a whole model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from torch import nn


def option(default: Any, help: str) -> Any:  # noqa: A002 - the field's help text
    """A config dataclass field with its help text."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Entry:
    module: type[nn.Module]
    config: type


class Registry:
    """name → (module class, config dataclass) of one slot."""

    def __init__(self, slot: str) -> None:
        self.slot = slot
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, module: type[nn.Module], config: type) -> None:
        if name in self._entries:
            raise ValueError(f"model.{self.slot}: '{name}' is registered twice")
        self._entries[name] = Entry(module, config)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def config(self, name: str, options: dict[str, Any] | None = None):
        """``name``'s config with ``options`` set; an unknown name or key raises a
        one-sentence ValueError naming the params key."""
        if name not in self._entries:
            raise ValueError(f"model.{self.slot}={name!r} is no registered component; "
                             f"choose one of {list(self._entries)}")
        cls = self._entries[name].config
        known = {f.name for f in fields(cls)}
        unknown = set(options or {}) - known
        if unknown:
            raise ValueError(f"model.{self.slot}_options: {sorted(unknown)} are no fields of "
                             f"{name!r}'s config; known: {sorted(known)}")
        return cls(**(options or {}))

    def build(self, name: str, options: dict[str, Any] | None = None, **widths: Any) -> nn.Module:
        """An instance of ``name``: its config from ``options``, tensor widths from ``widths``."""
        return self._entries[name].module(self.config(name, options), **widths)

    def help(self, name: str) -> dict[str, str]:
        """Config field → help text of ``name``."""
        return {f.name: f.metadata.get("help", "") for f in fields(self._entries[name].config)}


def collect_diagnostics(model: nn.Module) -> dict[str, float]:
    """Every component's ``diagnostics()`` since its last reset, merged."""
    out: dict[str, float] = {}
    for module in model.modules():
        if module is not model and hasattr(module, "diagnostics"):
            out.update(module.diagnostics())
    return out


def reset_diagnostics(model: nn.Module) -> None:
    for module in model.modules():
        if module is not model and hasattr(module, "reset_diagnostics"):
            module.reset_diagnostics()
