"""Read ``params/*.yaml``, apply ``--set key=value`` overrides, validate once."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scenellm.config.explain import message
from scenellm.config.schema import Params
from scenellm.config.sources import RawParams, parse_value, read_yaml
from scenellm.errors import UserError

NON_PARAM_FILES = {"search.yaml", "ablate.yaml"}


def read_params_dir(params_dir: Path) -> RawParams:
    """Merge every ``params/*.yaml`` (except the search space) into one raw dict, each key
    remembering its file and line."""
    if not params_dir.is_dir():
        raise UserError(f"{params_dir}: params folder not found; run from the project root.")
    raw = RawParams()
    for path in sorted(params_dir.glob("*.yaml")):
        if path.name in NON_PARAM_FILES:
            continue
        content, lines = read_yaml(path)
        if content is None:
            raise UserError(f"{path}: empty params file; write its sections (e.g. 'vqvae:' "
                            "and its keys) or delete the file.")
        if not isinstance(content, dict):
            raise UserError(f"{path}: expected a mapping of sections at the top level.")
        for section in content:
            if section in raw:
                raise UserError(f"{lines.get(str(section), path)}: section '{section}' is "
                                f"defined in two params files (also {raw.origin(str(section))}).")
        raw.update(content)
        raw.origins.update(lines)
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> RawParams:
    """Apply ``section.key=value`` overrides; values are parsed as YAML scalars.

    A list comes from the command line (each key's origin becomes ``--set KEY``); a dict
    comes from the caller (``search.yaml``, a trial), whose ``validate(source=...)`` names it.
    """
    out = RawParams(copy.deepcopy(dict(raw)), origins=getattr(raw, "origins", None))
    from_cli = not isinstance(overrides, dict)
    items = map(_split, overrides) if from_cli else overrides.items()
    for key, value in items:
        parts = key.split(".")
        if len(parts) < 2 or not all(parts):
            raise UserError(f"--set {key}: use section.key=value, e.g. vqvae.codebook_size=64.")
        origin = f"--set {key}" if from_cli else None
        node = out
        for n, part in enumerate(parts[:-1], 1):
            if part not in node:
                out.origins[".".join(parts[:n])] = origin
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: '{part}' is not a section.")
        node[parts[-1]] = parse_value(origin or key, value) if isinstance(value, str) else value
        out.origins = {k: v for k, v in out.origins.items() if not k.startswith(key + ".")}
        out.origins[key] = origin
    return out


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise UserError(f"--set {item}: expected key=value, e.g. lora.rank=16.")
    key, value = item.split("=", 1)
    return key.strip(), value


def validate(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate a raw dict into :class:`Params` with a one-line error naming where the bad
    value came from (``FILE:LINE``, ``--set KEY``, else ``source``), the key and the rule."""
    try:
        return Params.model_validate(dict(raw))
    except ValidationError as exc:
        errors = exc.errors()
        sourced = raw if isinstance(raw, RawParams) else RawParams(raw)
        text = message(errors[0], sourced, source, Params, len(errors) - 1)
        raise UserError(text) from None


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
