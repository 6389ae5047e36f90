"""The restricted unpickler: Action Genome contents load under every pickle protocol, and a
pickle can neither run code, nor choose an allocation size, nor crash numpy."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from scenellm.data.unpickle import load_pickle
from scenellm.errors import DataError, UnsafePickleError

AG_LIKE = {
    "bbox": np.arange(8, dtype=np.float32).reshape(2, 4),
    "empty": np.zeros((0, 4), np.float32),
    "score": np.array([0.5], np.float32),
    "big_endian": np.arange(3, dtype=">i4"),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "names": np.array(["ab", "c"]),
    "flags": np.array([True, False]),
    "scalar": np.float32(1.5),
    "size": (480, 270),
    "tags": {"a", "b"},
    "nothing": b"",
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_ag_contents_load_under_every_protocol(tmp_path, protocol):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(AG_LIKE, protocol=protocol))
    loaded = load_pickle(path)
    for key, value in AG_LIKE.items():
        if isinstance(value, np.ndarray | np.generic):
            assert np.array_equal(loaded[key], value) and loaded[key].shape == value.shape
            assert loaded[key].dtype.newbyteorder("=") == value.dtype.newbyteorder("=")
        else:
            assert loaded[key] == value
    again = pickle.loads(pickle.dumps(loaded["bbox"]))  # re-pickles as a plain ndarray
    assert type(again) is np.ndarray


def _evil_array_state(state):
    class Evil:
        def __reduce__(self):
            return (np.core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)

    return Evil()


def _evil_dtype_state(state):
    class Evil:
        def __reduce__(self):
            return (np.dtype, ("f8", False, True), state)

    return Evil()


REFUSED = {
    "bytearray(1.5e9)": (b"cbuiltins\nbytearray\n(J\x00/hYtR.", "builtins.bytearray"),
    "bytes(1.5e9)": (b"cbuiltins\nbytes\n(J\x00/hYtR.", "bytes.. with arguments"),
    "_reconstruct of a big shape": (
        b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(J\x00/hYtU\x01btR.",
        "_reconstruct asks"),
    "ndarray(shape)": (b"cnumpy\nndarray\n((J\x00/hYttR.", "numpy.ndarray.shape."),
    "scalar without data": (b"cnumpy.core.multiarray\nscalar\n(cnumpy\ndtype\n(U\x02f8tRtR.",
                            "scalar without data"),
    "void dtype of 1.5 GB": (b"cnumpy\ndtype\n(U\x0bV1500000000tR.", "not a plain number"),
    "_codecs.encode to zlib": (b"c_codecs\nencode\n(U\x01aU\x04zlibtR.", "latin-1 text only"),
    "array larger than its data": (
        pickle.dumps(_evil_array_state((1, (10**9,), np.dtype("f8"), False, b"")), protocol=2),
        "needs 8000000000 bytes, the file gives 0"),
    "object array": (pickle.dumps(np.array([1, "a"], dtype=object), protocol=2), "'O8'"),
    "dtype with fields": (
        pickle.dumps(_evil_dtype_state(
            (3, "<", None, ("a",), {"a": (np.dtype("f8"), 10**12)}, 8, 1, 0)), protocol=2),
        "fields or a sub-array"),
}  # fmt: skip


@pytest.mark.parametrize("name", REFUSED)
def test_pickle_that_allocates_or_corrupts_by_argument_is_refused(tmp_path, name):
    data, message = REFUSED[name]
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=message):
        load_pickle(path)


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x96"])  # BINBYTES8, BYTEARRAY8
def test_length_beyond_memory_is_a_one_line_error(tmp_path, opcode):
    path = tmp_path / "huge.pkl"
    path.write_bytes(b"\x80\x05" + opcode + (2**62).to_bytes(8, "little") + b".")
    with pytest.raises(DataError, match="more memory than|not a readable pickle"):
        load_pickle(path)


CHILD = """
import sys
from pathlib import Path
from scenellm.data.unpickle import load_pickle
from scenellm.errors import DataError
try:
    load_pickle(Path(sys.argv[1]))
    print("loaded")
except DataError as exc:
    print("refused")
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(int(hwm.split()[1]) // 1024)
"""


@pytest.mark.parametrize("payload", [
    REFUSED["bytearray(1.5e9)"][0],
    pickle.dumps(_evil_array_state((1, (10**6,), np.dtype("O"), False, [1])), protocol=2),
], ids=["35-byte bytearray", "object array shorter than its shape"])
def test_refused_pickle_neither_allocates_nor_crashes_the_process(tmp_path, payload):
    """Run in a child: unguarded, the first allocates 1.4 GB and the second segfaults."""
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    verdict, peak_mb = out.stdout.split()
    assert verdict == "refused" and int(peak_mb) < 400
