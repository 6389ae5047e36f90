"""Map a stage's per-item work over groups of items, each group a Prefect task run on a
pool of local worker threads; and share one run's items with helper processes on other
workers of a pool (:class:`ShardClaims`).

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


PLAN = "shards.plan.json"  # the videos a run will write, once its detector is ready
CLAIMS = "claims"  # per video: a lock while a process writes it, a marker once journaled


class ShardClaims:
    """Claims on a resumable stage's shards shared by several processes over one work folder:
    the stage's own run and helpers started on other workers of a pool that share the store
    (``scenellm stage features --join``).

    A process writes a shard only while it holds that shard's lock (``claims/<id>.lock``,
    taken without waiting; a held lock means another process is on it) and marks it done
    (``claims/<id>.done``) after the shard is written and its journal line appended under
    ``claims/journal.lock``. A process killed mid-shard leaves no marker, and its lock goes
    with the process, so the stage's own run, which ends with
    ``write_unclaimed(items, write, wait=True)``, writes what nobody finished.
    """

    def __init__(self, workdir, create: bool = True) -> None:
        """``create=False`` (helpers): the run made the folder before its plan and removes
        it when it has written everything, so a missing folder means the run is over, and
        a helper must not make a fresh one (no markers: it would write every shard again).
        Raises FileNotFoundError then."""
        from pathlib import Path

        self.folder = Path(workdir) / CLAIMS
        if create:
            self.folder.mkdir(exist_ok=True)
        elif not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: the run has finished")

    def reset(self) -> None:
        """Forget the markers of an earlier run (its journal is the record that counts)."""
        for marker in self.folder.glob("*.done"):
            marker.unlink(missing_ok=True)

    def done(self, item: str) -> bool:
        return (self.folder / f"{item}.done").exists()

    def mark_done(self, item: str) -> None:
        (self.folder / f"{item}.done").touch()

    def journal_lock(self):
        from filelock import FileLock

        return FileLock(str(self.folder / "journal.lock"))

    def claim(self, item: str, wait: bool = False):
        """An acquired lock on ``item`` (the caller releases it), or None when another
        process holds it and ``wait`` is False."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.folder / f"{item}.lock"), timeout=-1 if wait else 0)
        try:
            lock.acquire()
        except Timeout:
            return None
        return lock

    def write_unclaimed(self, items: Sequence[str], write: Callable[[str], None],
                        wait: bool = False) -> int:
        """``write(item)`` for each item not done and not held by another process (with
        ``wait``, after that process lets go); how many this process wrote."""
        written = 0
        for item in items:
            if not self.folder.is_dir():  # the run finished and cleared its claims
                break
            if self.done(item):
                continue
            try:
                lock = self.claim(item, wait)
            except FileNotFoundError:  # cleared between the check and the claim
                break
            if lock is None:
                continue
            try:
                if not self.done(item):
                    write(item)
                    written += 1
            finally:
                lock.release()
        return written

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)
