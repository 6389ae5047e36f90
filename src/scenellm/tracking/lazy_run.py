"""A stage's child run that exists only once something is recorded on it: a stage that
reuses its output leaves no run behind (the parent records the reuse instead)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any


class LazyChildRun:
    """``run_id`` creates the child run (under ``parent_id``) on first use; with
    ``system_metrics`` the run samples CPU, memory and GPU from then until it ends."""

    def __init__(self, tracker: Any, parent_id: str, name: str,
                 system_metrics: bool = False) -> None:
        self.tracker, self.parent_id, self.name = tracker, parent_id, name
        self.system_metrics = system_metrics
        self._run_id: str | None = None
        self._stack = ExitStack()

    @property
    def created(self) -> bool:
        return self._run_id is not None

    @property
    def run_id(self) -> str:
        return self.open()

    def open(self) -> str:
        """The run's id, creating the run now if it does not exist yet."""
        if self._run_id is None:
            self._run_id = self.tracker.start_child(self.parent_id, self.name)
            if self.system_metrics:
                from scenellm.tracking.system_metrics import system_metrics

                self._stack.enter_context(system_metrics(self._run_id,
                                                         self.tracker.tracking_uri))
        return self._run_id

    @contextmanager
    def ending(self) -> Iterator[LazyChildRun]:
        """End the run, if one was created, as :meth:`Tracker.ending` does: FINISHED,
        KILLED on Ctrl-C, FAILED on any other exception (re-raised)."""
        status = "FINISHED"
        try:
            yield self
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        except BaseException:
            status = "FAILED"
            raise
        finally:
            self._stack.close()
            if self._run_id is not None:
                self.tracker.end(self._run_id, status)
