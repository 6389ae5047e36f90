"""Checked stand-ins for the numpy callables an Action Genome pickle may name.

numpy trusts its pickle arguments: ``_reconstruct(ndarray, shape, dtype)`` and
``ndarray(shape)`` allocate whatever ``shape`` says, ``scalar(dtype)`` zero-fills a dtype
of any ``itemsize``, a dtype state may carry fields or sub-arrays that disagree with its
size, and an object array's state with a short list crashes the interpreter (numpy 2.4).
So the unpickler hands out these stand-ins instead: every size comes from bytes that are
in the file, dtypes are plain numbers or strings, and numpy's own ``__setstate__`` only
ever sees a state whose buffer matches its shape.

What numpy writes: ``_reconstruct(ndarray, (0,), b'b')`` then ``__setstate__((1, shape,
dtype, fortran, raw))`` (protocols 0-4), ``_frombuffer(buffer, dtype, shape, order)``
(protocol 5), ``scalar(dtype, raw)`` for numpy scalars and ``dtype('f4', False, True)``
then ``__setstate__((3, '<', None, None, None, -1, -1, 0))`` for a dtype.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from scenellm.errors import UnsafePickleError

# Numbers, booleans and fixed-size strings: what annotation arrays hold.
_PLAIN_DTYPE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248]|c(8|16)|[SU]\d{1,6})")
_MAX_NDIM = 32


class PickleRefused(UnsafePickleError):
    """Raised by a stand-in; the unpickler adds the file name."""


class DtypeSpec:
    """What a pickled ``numpy.dtype(spec, align, copy)`` asked for, until a stand-in needs
    the real dtype; its ``__setstate__`` keeps only the byte order."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        if isinstance(spec, bytes):
            spec = spec.decode("latin1")
        if not isinstance(spec, str) or not _PLAIN_DTYPE.fullmatch(spec):
            raise PickleRefused(f"numpy dtype {spec!r} is not a plain number or string type")
        self.spec, self.order = spec, "="

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 8 or state[0] != 3:
            raise PickleRefused("numpy dtype state is not a plain (version 3) dtype state")
        if state[1] not in ("<", ">", "|", "=") or any(s is not None for s in state[2:5]):
            raise PickleRefused("numpy dtype state carries fields or a sub-array")
        self.order = state[1]

    def __hash__(self) -> int:
        raise TypeError("a pickled dtype cannot be a key")

    def resolve(self) -> np.dtype:
        dtype = np.dtype(self.spec)
        return dtype if self.order in ("|", "=") else dtype.newbyteorder(self.order)


def _dtype(value: Any) -> np.dtype:
    if not isinstance(value, DtypeSpec):
        raise PickleRefused("a numpy array or scalar names a dtype that is not a pickled dtype")
    return value.resolve()


def _raw(value: Any) -> bytes:
    """Array bytes: ``bytes``, or ``str`` from a Python 2 pickle read as latin-1."""
    if isinstance(value, str):
        return value.encode("latin1")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise PickleRefused("numpy array data is not a byte string")


def _shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, tuple) or len(value) > _MAX_NDIM or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value
    ):
        raise PickleRefused(f"numpy shape {value!r} is not a tuple of sizes")
    return value


def _array(raw: Any, dtype: Any, shape: Any, fortran: bool) -> np.ndarray:
    """An owned array whose size is the length of ``raw``, never a number in the file."""
    data, dtype, shape = _raw(raw), _dtype(dtype), _shape(shape)
    if math.prod(shape) * dtype.itemsize != len(data):
        raise PickleRefused(
            f"numpy array of shape {shape} and dtype {dtype} needs "
            f"{math.prod(shape) * dtype.itemsize} bytes, the file gives {len(data)}"
        )
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()


class PickledArray(np.ndarray):
    """The array ``_reconstruct`` returns: its ``__setstate__`` checks the state first.

    Re-pickles as a plain ``numpy.ndarray``.
    """

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise PickleRefused("numpy array state is not (version, shape, dtype, order, data)")
        shape, dtype, fortran, raw = state[-4:]
        array = _array(raw, dtype, shape, bool(fortran))
        super().__setstate__((1, array.shape, array.dtype, False, array.tobytes()))

    def __reduce_ex__(self, protocol):
        return self.view(np.ndarray).__reduce_ex__(protocol)


class _NdarrayType:
    """Stands for ``numpy.ndarray`` as ``_reconstruct``'s first argument; never callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise PickleRefused("calls numpy.ndarray(shape), which allocates what the file says")


NDARRAY = _NdarrayType()


def reconstruct(subtype: Any, shape: Any, dtype: Any) -> PickledArray:
    """numpy always pickles ``_reconstruct(ndarray, (0,), b'b')``; the state fills it."""
    if subtype is not NDARRAY or math.prod(_shape(shape)) > 1:
        raise PickleRefused("_reconstruct asks for something other than an empty ndarray")
    return np.ndarray.__new__(PickledArray, (0,), np.uint8)


def frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Protocol 5: ``_frombuffer(buffer, dtype, shape, order)``."""
    return _array(buffer, dtype, shape, order == "F")


def scalar(dtype: Any, raw: Any = None) -> np.generic:
    """``scalar(dtype, raw)``: a numpy scalar from exactly ``itemsize`` bytes."""
    if raw is None:
        raise PickleRefused("numpy scalar without data, which allocates its dtype's size")
    return _array(raw, dtype, (), False)[()]


def latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode(text, 'latin1')``: bytes of Python 2-era pickles, and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused(f"_codecs.encode is allowed for latin-1 text only, not {encoding!r}")
    return text.encode("latin1")


STAND_INS: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): reconstruct
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): DtypeSpec,
    ("_codecs", "encode"): latin1_encode,
}
