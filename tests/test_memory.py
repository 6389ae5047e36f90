"""scenellm.memory: the allocator settings every stage runs with."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAGMENT = """
import sys
import numpy as np
from scenellm.memory import fixed_mmap_threshold
if sys.argv[1] == "fixed":
    assert fixed_mmap_threshold()
big = np.ones(16 << 20, np.uint8)
del big  # glibc's dynamic threshold now climbs to 16 MiB
blocks = [np.ones(1 << 20, np.uint8) for _ in range(200)]  # 200 MiB in 1 MiB buffers
kept = blocks[1::2]  # every other one freed: holes all through the heap
del blocks
print(int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]))
"""


def rss_kb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FRAGMENT, mode], capture_output=True,
                         text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_fixed_mmap_threshold_hands_freed_buffers_back():
    """With glibc's dynamic threshold the freed 1 MiB buffers stay in the heap (RSS keeps
    all 200 MiB); fixed at 128 KiB each one is unmapped when freed (RSS keeps ~100)."""
    dynamic, fixed = rss_kb("dynamic"), rss_kb("fixed")
    assert dynamic - fixed > 70 * 1024, (dynamic, fixed)


def test_arrow_allocates_from_the_system_pool_after_the_switch():
    out = subprocess.run([sys.executable, "-c", (
        "import pyarrow as pa; from scenellm.memory import use_system_arrow_pool; "
        "use_system_arrow_pool(); print(pa.default_memory_pool().backend_name)")],
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "system"
