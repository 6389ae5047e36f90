"""Map a stage's per-item work over groups of items, each group a Prefect task run on a
pool of local worker threads.

With one worker the items run in a plain loop (no Prefect). With ``workers`` > 1 the items
are cut into about ``GROUPS_PER_WORKER`` groups per worker, so a slow group does not leave
the other workers idle, and each group is submitted to a
:class:`~prefect.task_runners.ThreadPoolTaskRunner` owned by this call. Its own runner makes
the map work the same inside a flow (a stage is a task of the ``train`` flow, so the groups
become nested task runs) and outside one (``scenellm stage``: standalone task runs against
the command's Prefect API); it also keeps the groups off the flow's runner, whose workers
may all be busy waiting on stages (Prefect issue #17060).

Threads, not :class:`~prefect.task_runners.ProcessPoolTaskRunner`: torch releases the GIL
inside its kernels, the threads share one model in memory instead of one copy per process,
and a SIGKILL at a kill point (``scenellm.faults``) takes down the whole stage as in the
sequential loop, rather than one pool process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

GROUPS_PER_WORKER = 4


@dataclass(frozen=True)
class GroupRun:
    """Where and when one group ran: its Prefect task run, worker thread and interval."""

    task_run_id: str | None
    thread: str
    start: float
    end: float


def shard_groups(items: Sequence[str], workers: int) -> list[list[str]]:
    """``items`` cut into consecutive groups, about ``GROUPS_PER_WORKER`` per worker."""
    size = max(1, -(-len(items) // (workers * GROUPS_PER_WORKER)))  # ceil
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def peak_parallel(runs: Sequence[GroupRun]) -> int:
    """The most groups that were running at one instant."""
    events = sorted([(r.start, 1) for r in runs] + [(r.end, -1) for r in runs])
    peak = current = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start
        current += step
        peak = max(peak, current)
    return peak


def _run_group(work: Callable[[str], None], items: list[str]) -> GroupRun:
    from prefect.context import TaskRunContext

    start = time.perf_counter()
    for item in items:
        work(item)
    context = TaskRunContext.get()
    return GroupRun(str(context.task_run.id) if context else None,
                    threading.current_thread().name, start, time.perf_counter())


def map_shards(work: Callable[[str], None], items: Sequence[str], workers: int,
               name: str) -> list[GroupRun]:
    """Call ``work(item)`` for every item, on ``workers`` threads (module docstring); the
    runs of the groups, in group order. ``work`` must be safe to call from several threads
    at once. The first group that fails re-raises here once every group has ended."""
    if workers == 1 or not items:
        start = time.perf_counter()
        for item in items:
            work(item)
        return [GroupRun(None, threading.current_thread().name, start, time.perf_counter())]
    from prefect import task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    groups = shard_groups(items, workers)
    group_task = task(_run_group, name=f"{name}-shards", cache_policy=NO_CACHE)
    with ThreadPoolTaskRunner(max_workers=workers) as runner:
        futures = [runner.submit(group_task.with_options(
                       task_run_name=f"{name} shards {i + 1}/{len(groups)}: "
                                     f"{group[0]}..{group[-1]}"),
                   {"work": work, "items": group})
                   for i, group in enumerate(groups)]
        for future in futures:
            future.wait()
        return [future.result() for future in futures]
