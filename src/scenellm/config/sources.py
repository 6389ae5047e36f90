"""Raw params with their provenance: which file and line, or which ``--set``, gave each key.

:class:`RawParams` is the merged dict of ``params/*.yaml`` plus overrides, carrying
``origins``: ``{"vqvae": "params/vqvae.yaml:1", "vqvae.codebook_size":
"params/vqvae.yaml:2", "ot.epsilon": "--set ot.epsilon"}``. A validation error then names
where the bad value came from (:mod:`scenellm.config.explain`). An origin of ``None``
means "the caller's source" (e.g. ``search.yaml: fixed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scenellm.errors import UserError


class RawParams(dict):
    """A params dict whose ``origins`` map dotted keys to where their values came from."""

    def __init__(self, *args: Any, origins: dict[str, str | None] | None = None) -> None:
        super().__init__(*args)
        self.origins: dict[str, str | None] = dict(origins or {})

    def origin(self, key: str) -> str | None:
        """The origin of ``key`` or of its nearest enclosing section."""
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            prefix = ".".join(parts[:n])
            if prefix in self.origins:
                return self.origins[prefix]
        return None


def _key_lines(node: yaml.Node, path: Path, prefix: str, out: dict[str, str]) -> None:
    """``out[dotted key] = "path:line"`` for every scalar key of nested mappings; a key
    given twice in one mapping is an error (YAML would silently keep the last)."""
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in seen:
            raise UserError(f"{path}:{line}: key '{prefix}{key_node.value}' is given twice "
                            f"(first on line {seen[key_node.value]}); keep one.")
        seen[key_node.value] = line
        out[prefix + key_node.value] = f"{path}:{line}"
        _key_lines(value_node, path, f"{prefix}{key_node.value}.", out)


def read_yaml(path: Path) -> tuple[Any, dict[str, str]]:
    """A YAML file's content and the ``path:line`` of each of its keys.

    Non-UTF-8 bytes, syntax errors (with line and column) and duplicate keys are one-line
    :class:`UserError` s.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); params files are YAML "
                        "text.") from None
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters here
        node = loader.get_single_node()
        lines: dict[str, str] = {}
        if node is None:
            return None, lines
        _key_lines(node, path, "", lines)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = " ".join(str(exc.problem or exc.context).split())
        raise UserError(f"{where}: not valid YAML: {problem}.") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise UserError(f"{path}:{line}:{column}: not valid YAML: control character "
                        f"U+{code:04X} is not allowed in YAML text.") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(exc).split())}.") from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_value(where: str, value: str) -> Any:
    """An override's value, read as YAML (``64``, ``1e-3``, ``null``, ``[a, b]``); ``where``
    names it in an error (``--set KEY``)."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise UserError(f"{where}: value {value!r} is not valid YAML ({problem}); quote it or "
                        "fix the brackets.") from None


def load_validated(path: Path, model, missing: str):
    """``model`` (a pydantic class) validated from the YAML file ``path``; every failure is
    one :class:`UserError` line: ``missing`` when the file is absent, ``FILE:LINE:COL`` for
    YAML errors, ``FILE: field: rule (got value)`` for a value the model refuses."""
    from pydantic import ValidationError

    if not path.is_file():
        raise UserError(f"{path}: {missing}")
    content, _ = read_yaml(path)
    try:
        return model.model_validate(content or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        got = f" (got {err['input']!r})" if "input" in err else ""
        raise UserError(f"{path}: {field}: {err['msg']}{got}.") from None
