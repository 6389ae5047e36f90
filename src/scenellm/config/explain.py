"""One-line messages for params validation errors: where the value came from (``FILE:LINE``
or ``--set KEY``), the key, the rule, the value, and a "did you mean" for unknown keys."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel

from scenellm.config.sources import RawParams


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _fields(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Field names of the model at ``loc`` (the parent of an unknown key)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return list(model.model_fields)


def suggestion(word: str, choices: list[str], prefix: str = "") -> str:
    """``did you mean 'PREFIX.CLOSEST'?``, else the list of choices."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean '{prefix}{close[0]}'?" if close else f"choose one of: {', '.join(choices)}"


def rule(err: dict, model: type[BaseModel]) -> str:
    """The broken rule in words, with a suggestion where one helps."""
    loc = tuple(p for p in err["loc"] if p != "[key]")
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        choices = _fields(model, loc[:-1]) or []
        what = "section" if len(loc) == 1 else "key"
        prefix = "".join(f"{p}." for p in loc[:-1])
        return f"unknown {what}; {suggestion(str(loc[-1]), choices, prefix)}"
    if kind == "literal_error":
        expected = [c.strip(" '") for c in err["ctx"]["expected"].replace(" or ", ", ").split(",")]
        return f"{_short(err['input'])} is not allowed; {suggestion(str(err['input']), expected)}"
    msg = re.sub(r"^(Input|List|String|Dictionary|Tuple) should", "must",
                 msg.removeprefix("Value error, "))
    if kind == "finite_number":
        msg += " (not inf or nan)"
    return f"{msg} (got {_short(err.get('input'))})"


def _lookup(node: Any, key: str) -> Any:
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def blame(keys: tuple[str, ...], raw: RawParams, model: type[BaseModel]) -> str | None:
    """Where the value to blame came from, among ``keys``: a ``--set`` first, then a value
    that differs from its default, then any known origin."""
    defaults = model()
    found = [(k, raw.origin(k)) for k in keys]
    for wanted in (lambda k, o: o.startswith("--set"),
                   lambda k, o: _lookup(raw, k) != _lookup(defaults, k),
                   lambda k, o: True):
        origin = next((o for k, o in found if o and wanted(k, o)), None)
        if origin:
            return origin
    return None


def message(err: dict, raw: RawParams, source: str, model: type[BaseModel], more: int) -> str:
    """``ORIGIN: KEY: RULE`` where ORIGIN is the file line or ``--set KEY`` of the value."""
    loc = tuple(str(p) for p in err["loc"] if p != "[key]")
    keys = tuple(err.get("ctx", {}).get("keys", ())) or (".".join(loc),)
    origin = blame(keys, raw, model) or source
    text = rule(err, model) if err["type"] != "cross_field" else err["msg"]
    key = "" if origin == f"--set {keys[0]}" or err["type"] == "cross_field" else f"{keys[0]}: "
    tail = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    end = "" if text.endswith(("?", ".")) and not tail else "."
    return f"{origin}: {key}{text}{tail}{end}"
