"""Every resolved param with where its value came from: ``FILE:LINE``, ``--set KEY``,
``fixed`` (a study's search.yaml) or ``default`` (the schema's own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenellm.config.load import flatten
from scenellm.config.schema import Params
from scenellm.config.sources import RawParams


def origins(raw: RawParams, params: Params, root: Path | None = None) -> list[tuple[str, Any,
                                                                                   str]]:
    """``(key, value, origin)`` for every leaf of ``params``; file paths under ``root`` are
    printed relative to it."""
    out = []
    for key, value in flatten(params).items():
        if key not in raw.origins:
            origin = "default"
        elif raw.origins[key] is None:
            origin = "fixed"
        else:
            origin = raw.origins[key]
            if root is not None and origin.startswith(str(root) + "/"):
                origin = origin[len(str(root)) + 1:]
        out.append((key, value, origin))
    return out
