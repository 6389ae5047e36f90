"""Restricted unpickling for Action Genome annotation pickles.

AG pickles hold dicts, lists, strings, numbers and numpy arrays. A pickle can name any
importable callable (``os.system``, ``subprocess.Popen``...) and have it called while
loading, so we admit only the globals those contents need and refuse everything else
before it is ever imported. The admitted numpy callables are replaced by checked stand-ins
(:mod:`scenellm.data.unpickle_numpy`) so that no size is taken from a number in the file.

``builtins.bytearray`` is not admitted: ``bytearray(1500000000)`` is a 35-byte pickle that
allocates 1.5 GB, and AG pickles never hold byte arrays (numpy array data is ``bytes``, or
``_codecs.encode`` of latin-1 text in Python 2-era pickles).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from scenellm.data.unpickle_numpy import STAND_INS, PickleRefused
from scenellm.errors import DataError, UnsafePickleError

# Callables whose result is bounded by the bytes of their arguments.
BUILTINS: frozenset[tuple[str, str]] = frozenset({
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
})


def empty_bytes(*args: Any) -> bytes:
    """Protocols 0-2 write ``b""`` as ``bytes()``; ``bytes(n)`` would allocate ``n``."""
    if args:
        raise PickleRefused("calls bytes() with arguments, which allocates what the file says")
    return b""


CHECKED: dict[tuple[str, str], Any] = {**STAND_INS, ("builtins", "bytes"): empty_bytes}
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = BUILTINS | frozenset(CHECKED)


class ActionGenomeUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # protocols 0-2
        if (module, name) in CHECKED:
            return CHECKED[module, name]
        if (module, name) not in BUILTINS:
            raise UnsafePickleError(
                f"{self.source}: refuses to load global '{module}.{name}'; Action Genome "
                "pickles hold only builtins and numpy arrays, so this file is not trusted."
            )
        return super().find_class(module, name)


def load_pickle(path: Path) -> Any:
    """Load an AG pickle through the allow-list, with one-line errors for bad files."""
    if not path.exists():
        raise DataError(f"{path}: file not found; expected the Action Genome layout.")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file; expected an Action Genome pickle.")
    try:
        with open(path, "rb") as handle:
            return ActionGenomeUnpickler(handle, str(path)).load()
    except PickleRefused as exc:
        raise UnsafePickleError(f"{path}: refused: {exc}; this file is not trusted.") from None
    except UnsafePickleError:
        raise
    except MemoryError:
        raise DataError(f"{path}: claims more memory than this machine has; the file is "
                        "corrupt or not an Action Genome pickle.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, OverflowError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: not a readable pickle ({exc.__class__.__name__}: {reason}); "
                        "the file may be truncated or corrupt.") from None
