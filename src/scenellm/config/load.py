"""Read ``params/*.yaml``, apply ``--set key=value`` overrides, validate once."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from scenellm.config.schema import Params
from scenellm.errors import UserError

NON_PARAM_FILES = {"search.yaml"}


def read_params_dir(params_dir: Path) -> dict[str, Any]:
    """Merge every ``params/*.yaml`` (except the search space) into one raw dict."""
    if not params_dir.is_dir():
        raise UserError(f"{params_dir}: params folder not found; run from the project root.")
    raw: dict[str, Any] = {}
    for path in sorted(params_dir.glob("*.yaml")):
        if path.name in NON_PARAM_FILES:
            continue
        try:
            content = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({exc.__class__.__name__}).") from exc
        if not isinstance(content, dict):
            raise UserError(f"{path}: expected a mapping of sections at the top level.")
        for section in content:
            if section in raw:
                raise UserError(f"{path}: section '{section}' is defined in two params files.")
        raw.update(content)
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides; values are parsed as YAML scalars."""
    out = copy.deepcopy(raw)
    items = overrides.items() if isinstance(overrides, dict) else map(_split, overrides)
    for key, value in items:
        parts = key.split(".")
        if len(parts) < 2:
            raise UserError(f"--set {key}: use section.key=value, e.g. vqvae.codebook_size=64.")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: '{part}' is not a section.")
        node[parts[-1]] = yaml.safe_load(value) if isinstance(value, str) else value
    return out


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise UserError(f"--set {item}: expected key=value, e.g. lora.rank=16.")
    key, value = item.split("=", 1)
    return key.strip(), value


def validate(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a raw dict into :class:`Params` with a one-line error naming the field."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{source}: {field}: {err['msg']} (got {err.get('input')!r}).") from exc


def load_params(params_dir: Path = Path("params"), overrides: list[str] | None = None) -> Params:
    """The one entry point: read, override, validate."""
    raw = apply_overrides(read_params_dir(params_dir), overrides or [])
    return validate(raw, source=str(params_dir))


def section_digest(params: Params, sections: tuple[str, ...]) -> dict[str, Any]:
    """The JSON-able subset of params a stage reads."""
    return {name: getattr(params, name).model_dump(mode="json") for name in sections}


def params_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def flatten(params: Params) -> dict[str, Any]:
    """``{"vqvae.codebook_size": 512, ...}`` for trackers."""
    flat: dict[str, Any] = {}
    for section, values in params.model_dump(mode="json").items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    return flat
