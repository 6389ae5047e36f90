"""Frame keys: the ``VID.mp4/FRAME.png`` names that join the pickles, ``frame_list.txt``
and ``frames/``.

A key becomes a path under ``frames/``, so it is held to one normal form: a video id and a
frame file name, each of letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
digit. That rules out absolute keys, ``..``, aliases such as ``VID.mp4/./000035.png`` (two
keys naming one file), hidden names, spaces and control characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from scenellm.errors import DataError

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
NAME = re.compile(_NAME)
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
# The same rules as one pattern each, for the data guard's regex expectations.
VIDEO_PATTERN = rf"^{_NAME}$"
KEY_PATTERN = rf"^{_NAME}/{_NAME}\.(?i:png|jpg|jpeg)$"


def key_problem(key: object) -> str | None:
    """Why ``key`` is not a normal ``VIDEO/FRAME.png`` key, or None."""
    if not isinstance(key, str):
        return f"is of type {type(key).__name__}, not a string"
    parts = key.split("/")
    if key.startswith("/"):
        return "is an absolute path"
    if any(p in (".", "..") for p in parts):
        return "has a '.' or '..' part (keys are normalised VIDEO/FRAME names)"
    if len(parts) != 2:
        return f"has {len(parts)} parts, expected exactly VIDEO/FRAME"
    bad = [p for p in parts if not NAME.fullmatch(p)]
    if bad:
        return (f"has a part {bad[0]!r} that is not 1-128 letters, digits, '.', '_' or '-' "
                "starting with a letter or digit (no spaces)")
    if not parts[1].lower().endswith(FRAME_SUFFIXES):
        return f"has a frame name that does not end in {', '.join(FRAME_SUFFIXES)}"
    return None


def check_key(key: object, source: str) -> str:
    """``key`` when it is a normal frame key, else a one-line :class:`DataError`."""
    problem = key_problem(key)
    if problem:
        raise DataError(f"{source}: frame key {key!r} {problem}; rename the frame and its key.")
    return key  # type: ignore[return-value]


def check_frame_list(path: Path, keys: Iterable[str]) -> None:
    """``annotations/frame_list.txt`` names exactly the pickles' frames, once each."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected the Action Genome layout "
                        "(one frame key per line).")
    lines = [line.strip() for line in read_text(path).splitlines()]
    listed: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        check_key(line, f"{path}:{number}")
        if line in listed:
            raise DataError(f"{path}:{number}: frame {line!r} is listed twice (first on line "
                            f"{listed[line]}); list each frame once.")
        listed[line] = number
    keys = list(keys)
    missing = next((k for k in keys if k not in listed), None)
    if missing is not None:
        raise DataError(f"{path}: frame {missing!r} of person_bbox.pkl is not listed; the "
                        "frame list must name exactly the annotated frames.")
    known = set(keys)
    extra = next((k for k in listed if k not in known), None)
    if extra is not None:
        raise DataError(f"{path}:{listed[extra]}: frame {extra!r} is not in person_bbox.pkl; "
                        "the frame list must name exactly the annotated frames.")


def read_text(path: Path) -> str:
    """A UTF-8 annotation text file, or a one-line error."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
