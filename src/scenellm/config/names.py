"""Names a user gives to things that become folder names (studies, runs)."""

from __future__ import annotations

import re
from pathlib import Path

from scenellm.errors import UserError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str, what: str = "study") -> str:
    """``name`` when it is safe as one folder name: 1-100 letters, digits, '.', '_' or '-',
    starting with a letter or digit, without '..'; else a one-line :class:`UserError`."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise UserError(f"{what} name {name!r} is not allowed: use 1-100 letters, digits, '.', "
                        "'_' or '-', starting with a letter or digit, without '..' "
                        f"(it becomes a folder name), e.g. --{what} sweep-1.")
    return name


def path_under(base: Path, *names: str) -> Path:
    """``base/names...``, refused unless it stays inside ``base`` once resolved."""
    path = base.joinpath(*names)
    if not path.resolve().is_relative_to(base.resolve()):
        raise UserError(f"{path}: resolves outside {base}; choose a plain name.")
    return path
