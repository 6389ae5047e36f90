"""Restricted unpickling for Action Genome annotation pickles.

AG pickles hold dicts, lists, strings, numbers and numpy arrays. A pickle can name any
importable callable (``os.system``, ``subprocess.Popen``...) and have it called while
loading, so we admit only the globals those contents need and refuse everything else
before it is ever imported.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from scenellm.errors import DataError, UnsafePickleError

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes of numpy arrays pickled by Python 2 or protocol < 3
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
})


class ActionGenomeUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self.source}: refuses to load global '{module}.{name}'; Action Genome "
                "pickles hold only builtins and numpy arrays, so this file is not trusted."
            )
        return super().find_class(module, name)


def load_pickle(path: Path) -> Any:
    """Load an AG pickle through the allow-list, with one-line errors for bad files."""
    if not path.exists():
        raise DataError(f"{path}: file not found; expected the Action Genome layout.")
    try:
        with open(path, "rb") as handle:
            return ActionGenomeUnpickler(handle, str(path)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable pickle ({exc.__class__.__name__}: {exc}); "
                        "the file may be truncated or corrupt.") from exc
