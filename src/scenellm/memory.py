"""Process memory: freed memory goes back to the system, so a stage's peak RSS follows what
it holds at once rather than everything it held before.

- Arrow (pandas' string columns, parquet reads) allocates from its own pool (jemalloc or
  mimalloc), which keeps freed blocks for reuse by Arrow alone. The system pool hands them
  back to glibc; measured on the prepare stage at 1,000 videos: peak 455 → 432 MB.
- glibc raises its mmap threshold each time a large block is freed (from 128 KiB up to
  32 MiB), after which buffers of a few MiB (feature shards, batches) come from the heap,
  whose free space is fragmented and never shrinks: RSS grows with the number of shards
  read. :func:`fixed_mmap_threshold` keeps the threshold at 128 KiB, so such buffers are
  mapped and unmapped whole. Measured on the VQ-VAE stage at 1,000 videos: peak
  766 → 652 MB. It costs time where large buffers come and go at a high rate (the
  features stage's CNN ran 43 % slower with it), so only the stages whose memory it keeps
  flat turn it on: ``vqvae`` and ``evaluate``. The setting is process-wide and cannot be
  undone, so in a process that runs the whole pipeline the stages after ``vqvae`` keep it.
- glibc keeps freed heap pages mapped until ``malloc_trim``; :func:`release_free_memory`
  calls it between a stage's phases (after the annotation objects are gone, before
  validation allocates its copies).
- Python's small-object allocator returns a 1 MiB arena to the system only when every
  object in it is freed, so a few long-lived objects made in the middle of a load pin the
  arenas of everything freed around them. Two kinds were found in ``prepare``: modules
  imported midway (PIL's format plugins at the first frame, pandas' Arrow types at the
  first parquet write) and the strings the interpreter's type attribute cache keeps (PIL
  looks up a fresh ``chunk_<type>`` name per PNG chunk). ``prepare`` imports ahead, and
  :func:`release_free_memory` empties the type cache. Measured at 1,000 videos: RSS after
  the load 258 → 160 MB (141 at 100 videos).
"""

from __future__ import annotations

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept


def use_system_arrow_pool() -> None:
    """Make the system allocator Arrow's default pool (no-op without pyarrow)."""
    try:
        import pyarrow as pa
    except ImportError:
        return
    pa.set_memory_pool(pa.system_memory_pool())


def _libc():
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def fixed_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``size`` bytes (turning its dynamic growth off); False
    where there is no glibc ``mallopt``."""
    try:
        return bool(_libc().mallopt(M_MMAP_THRESHOLD, size))
    except (OSError, AttributeError):
        return False


def release_free_memory() -> None:
    """Collect garbage, empty the type attribute cache (its strings pin arenas) and hand
    the heap's free pages back to the system (glibc's ``malloc_trim``; a no-op where there
    is none)."""
    import gc
    import sys

    sys._clear_type_cache()
    gc.collect()
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        pass
