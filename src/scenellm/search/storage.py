"""Where a study lives: an Optuna journal file (embedded default) or a database URL.

Both keep a **heartbeat** on every running trial, so a trial whose worker died is marked
failed and re-queued with the same params (Optuna's
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`). PostgreSQL (RDB) storage has
Optuna's own heartbeat table; the journal file has none, so :class:`JournalHeartbeatStorage`
records each beat as a trial system attribute ``{"time", "host", "pid"}`` and calls a
running trial stale when

    now − last beat > grace_period,   or   its worker ran on this host and its pid is gone.

The second test lets a re-run on the same machine retry a killed trial at once instead of
waiting out the grace period. Beats older than the trial's own start are ignored: a retried
trial inherits its dead predecessor's system attributes.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from scenellm.errors import UserError
from scenellm.project import Project
from scenellm.search.space import Heartbeat

HEARTBEAT = "scenellm:heartbeat"
StaleCallback = Callable[..., None]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class JournalHeartbeatStorage(JournalStorage, BaseHeartbeat):
    """A journal-file storage whose running trials beat (see the module docstring)."""

    def __init__(
        self, path: Path, heartbeat: Heartbeat, on_stale: StaleCallback | None = None
    ) -> None:
        super().__init__(JournalFileBackend(str(path)))
        self.heartbeat = heartbeat
        self.on_stale = on_stale
        self.host = socket.gethostname()

    def record_heartbeat(self, trial_id: int) -> None:
        beat = {"time": time.time(), "host": self.host, "pid": os.getpid()}
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT, beat)
        except UpdateFinishedTrialError:  # finished between two beats
            pass

    def is_stale(self, trial: FrozenTrial, now: float) -> bool:
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        beat = trial.system_attrs.get(HEARTBEAT)
        if not beat or beat["time"] < started:
            return now - started > self.heartbeat.grace_period
        if beat["host"] == self.host and beat["pid"] != os.getpid() and not pid_alive(beat["pid"]):
            return True
        return now - beat["time"] > self.heartbeat.grace_period

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [t._trial_id for t in running if self.is_stale(t, now)]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat.interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self.on_stale


def is_url(target: str) -> bool:
    return "://" in target


def display(target: str) -> str:
    """The storage as it may be printed and logged (database passwords masked)."""
    if not is_url(target):
        return target
    from sqlalchemy.engine import make_url

    return make_url(target).render_as_string(hide_password=True)


def resolve_target(url: str | None, project: Project) -> str:
    """``url``, else ``$SCENELLM_OPTUNA_STORAGE``, else ``<home>/optuna.journal``; a
    relative journal path is taken from the project root (workers resolve it alike)."""
    target = url or project.optuna_storage
    if is_url(target):
        return target
    path = Path(target)
    return str(path if path.is_absolute() else (project.root / path).resolve())


def open_storage(
    target: str, heartbeat: Heartbeat, on_stale: StaleCallback | None = None
) -> BaseStorage:
    """A journal file path or a SQLAlchemy URL (``postgresql://user@host/db``) as a
    heartbeat-enabled Optuna storage."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    if not is_url(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        return JournalHeartbeatStorage(Path(target), heartbeat, on_stale)
    import time

    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    def connect() -> RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RDBStorage(
                target,
                heartbeat_interval=heartbeat.interval,
                grace_period=heartbeat.grace_period,
                heartbeat_stale_trial_callback=on_stale,
                engine_kwargs={"pool_pre_ping": True},
            )

    try:
        for attempt in range(5):
            try:
                return connect()
            except (IntegrityError, ProgrammingError):
                # Workers joining a fresh database race to create Optuna's tables; the
                # loser sees a duplicate type/table and finds them complete a moment later.
                if attempt == 4:
                    raise
                time.sleep(1.0 + attempt)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"--storage {display(target)}: cannot open the study database "
            f"({first}); check the URL and that the database exists."
        ) from exc
