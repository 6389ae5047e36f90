"""Progress of long loops: a live bar in a terminal, plain periodic lines elsewhere.

Stages run for minutes; in a terminal a ``rich`` bar shows the count, the latest figures
(loss, validation recall, frames/s) and the elapsed time. Outside a terminal (logs, CI,
Prefect workers) nothing would appear until the end, so the same updates become one line
every ``PLAIN_EVERY`` seconds, plus the first and the last. A loop that starts part-way
(a resumed stage) says so first. Everything goes to stderr, so ``--json`` output on stdout
stays clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

PLAIN_EVERY = 15.0  # seconds between plain lines outside a terminal


def figures(record: dict, keys: tuple[str, ...]) -> str:
    """``"loss 0.412 · val_predcls_R@20 0.583"`` from the ``keys`` of ``record`` present."""
    return " · ".join(f"{k} {record[k]:.3g}" for k in keys if isinstance(record.get(k), int | float))


def say(stream: TextIO, text: str) -> None:
    """One line, written to the stream itself: a Prefect flow with ``log_prints`` turns
    ``print`` into INFO log records, which its WARNING level then drops."""
    stream.write(text + "\n")
    stream.flush()


class Progress:
    """One loop's progress; ``update(completed=…, advance=…, info=…)`` as it goes."""

    def __init__(self, label: str, total: int, unit: str, stream: TextIO, every: float,
                 bar=None, task=None) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream, self.every = stream, every
        self.bar, self.task = bar, task
        self.completed, self.info = 0, ""
        self.started = time.monotonic()
        self.last_line: float | None = None

    def update(self, completed: int | None = None, advance: int = 0, info: str | None = None,
               ) -> None:
        self.completed = (self.completed if completed is None else completed) + advance
        if info is not None:
            self.info = info
        if self.bar is not None:
            self.bar.update(self.task, completed=self.completed, info=self.info)
            return
        now = time.monotonic()
        if self.last_line is None or now - self.last_line >= self.every \
                or self.completed >= self.total:
            self.line()

    def line(self) -> None:
        self.last_line = time.monotonic()
        elapsed = self.last_line - self.started
        info = f"  {self.info}" if self.info else ""
        say(self.stream, f"{self.label}: {self.completed}/{self.total} {self.unit}{info}  "
                         f"[{elapsed:.0f} s]")


@contextmanager
def progress(label: str, total: int, unit: str = "", completed: int = 0,
             stream: TextIO | None = None, every: float = PLAIN_EVERY,
             resumed: str | None = None) -> Iterator[Progress]:
    """A :class:`Progress` for ``total`` steps, ``completed`` of them already done (a
    resumed loop; ``resumed`` says what was found instead when the loop recounts)."""
    stream = stream or sys.stderr
    if completed or resumed:
        found = resumed or f"at {completed}/{total} {unit}"
        say(stream, f"{label}: resumed {found}")
    if not stream.isatty():
        tracker = Progress(label, total, unit, stream, every)
        tracker.completed = completed
        try:
            yield tracker
        finally:
            if tracker.last_line is None or tracker.completed != tracker.total:
                tracker.line()  # where the loop ended, even when it stopped early
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Bar(*columns, console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(label, total=total, completed=completed, info="")
        tracker = Progress(label, total, unit, stream, every, bar, task)
        tracker.completed = completed
        yield tracker
