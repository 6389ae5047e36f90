"""Deterministic kill points for the crash-safety harness (``tests/stages/test_kill.py``).

``killpoint("name")`` marks a place where a SIGKILL must leave either the old state or a
resumable ``.partial``. With ``SCENELLM_KILL_AT=name`` (or ``name@n``: the n-th time the
point is reached) the process kills itself there with SIGKILL: no ``finally``, no atexit,
exactly like the OOM killer or a pulled plug. Unset (always, outside the harness), a kill
point costs one dictionary lookup. With ``SCENELLM_KILL_RANK=r`` as well, only the rank ``r``
of a multi-process stage (``RANK`` from torchrun; 0 outside it) dies there.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "SCENELLM_KILL_AT"
RANK_ENV = "SCENELLM_KILL_RANK"
_hits: Counter[str] = Counter()


def killpoint(name: str) -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    point, _, nth = target.partition("@")
    if point != name:
        return
    rank = os.environ.get(RANK_ENV)
    if rank is not None and rank != os.environ.get("RANK", "0"):
        return
    _hits[name] += 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
