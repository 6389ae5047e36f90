"""Files of an Action Genome root: nothing escapes it, and every kept frame is an image of
the size its annotation says.

Only paths are resolved (``readlink``, never ``open``) until a file is known to lie inside
the root, so a link to ``/etc/passwd`` is refused without being read. Frames are opened as
PNG or JPEG only, with Pillow's decompression-bomb warning raised as an error.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path

from scenellm.errors import DataError

FORMATS = ("PNG", "JPEG")


def resolve_inside(root: Path, path: Path) -> Path:
    """``path`` with symlinks resolved, refused unless it stays inside ``root``."""
    base = root.resolve()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot resolve ({exc.__class__.__name__}: symlink loop?); "
                        "replace the link with the file.") from None
    if not resolved.is_relative_to(base):
        raise DataError(f"{path}: links outside the data root {base} (to {resolved}); copy the "
                        "file into the root instead of linking to it.")
    return resolved


def check_links(root: Path) -> None:
    """Every symlink under ``root`` resolves to an existing path inside ``root``.

    Checked before any file is read, so that later readers (the loader, DVC's hashing)
    follow no link out of the root and trip on no dangling one.
    """
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_symlink():
                    target = resolve_inside(root, path)
                    if not os.path.exists(target):
                        raise DataError(f"{path}: dangling symlink (to {target}); restore the "
                                        "file or remove the link.")
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(path)


def check_frame(root: Path, key: str, size: tuple[int, int]) -> None:
    """``frames/<key>`` is a regular file inside ``root``, decodes as a PNG or JPEG image
    and is ``size`` = (width, height) pixels, the frame's ``bbox_size``."""
    from PIL import Image

    path = root / "frames" / key
    resolved = resolve_inside(root, path)
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: frame {key!r} is missing; every kept frame of the pickles "
                        "needs its image under frames/.") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: frame {key!r} is not a regular file; expected a PNG or JPEG "
                        "image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(resolved, formats=FORMATS) as image:
                found = image.size
                if found == tuple(size):
                    image.verify() if image.format == "PNG" else image.load()
    except Image.UnidentifiedImageError:
        raise DataError(f"{path}: frame {key!r} is not a PNG or JPEG file; re-extract the "
                        "frame.") from None
    except Exception as exc:  # noqa: BLE001 (Pillow raises many types on corrupt files)
        reason = " ".join(str(exc).split())[:120] or exc.__class__.__name__
        raise DataError(f"{path}: frame {key!r} does not decode as a PNG or JPEG image "
                        f"({reason}); re-extract the frame.") from None
    if found != tuple(size):
        raise DataError(f"{path}: frame {key!r} is {found[0]}x{found[1]} pixels but its "
                        f"bbox_size in person_bbox.pkl is {size[0]}x{size[1]}; re-extract the "
                        "frame or fix bbox_size.")


def check_frames(root: Path, frames: Iterable[tuple[str, tuple[int, int]]]) -> None:
    """:func:`check_frame` for each (key, size), stopping at the first bad frame."""
    if not (root / "frames").is_dir():
        raise DataError(f"{root / 'frames'}: folder not found; expected the Action Genome "
                        "layout (frames/VIDEO/FRAME.png).")
    for key, size in frames:
        check_frame(root, key, size)
