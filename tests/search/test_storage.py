"""Study storage: target resolution, and the journal file's heartbeat (stale trials are
failed and re-queued with their params)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from scenellm.errors import UserError
from scenellm.project import Project
from scenellm.search.optimize import fail_stale, trial_counts
from scenellm.search.space import Heartbeat
from scenellm.search.storage import (
    HEARTBEAT,
    JournalHeartbeatStorage,
    display,
    open_storage,
    resolve_target,
)
from scenellm.search.study import StaleTrialRetry

BEAT = Heartbeat(interval=1, grace_period=5, max_retry=1)


class RecordingRetry(StaleTrialRetry):
    """The real retry callback, without MLflow (no run ids on these trials)."""

    def __init__(self) -> None:
        super().__init__(tracker=None, max_retry=BEAT.max_retry)
        self.seen: list[int] = []

    def __call__(self, study, trial) -> None:
        self.seen.append(trial.number)
        super().__call__(study, trial)


def test_resolve_target(tmp_path, monkeypatch):
    project = Project(tmp_path)
    monkeypatch.delenv("SCENELLM_OPTUNA_STORAGE", raising=False)
    assert resolve_target(None, project) == str(tmp_path / ".scenellm" / "optuna.journal")
    assert resolve_target("studies/a.journal", project) == str(tmp_path / "studies/a.journal")
    url = "postgresql+psycopg2://postgres@127.0.0.1:5432/x"
    assert resolve_target(url, project) == url
    monkeypatch.setenv("SCENELLM_OPTUNA_STORAGE", url)
    assert resolve_target(None, project) == url
    assert display("postgresql://bob:secret@db:5432/x") == "postgresql://bob:***@db:5432/x"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def running_trial(
    study: optuna.Study,
    host: str | None,
    pid: int = 0,
    beat_age: float = 0.0,
    started_ago: float = 0.0,
) -> int:
    """A RUNNING trial with one param and, unless ``host`` is None, a heartbeat recorded
    ``beat_age`` seconds ago by ``host:pid``."""
    start = datetime.datetime.now() - datetime.timedelta(seconds=started_ago)
    trial = optuna.create_trial(
        state=TrialState.RUNNING,
        params={"ot.epsilon": 0.1},
        distributions={"ot.epsilon": FloatDistribution(0.01, 1)},
    )
    trial.datetime_start = start
    study.add_trial(trial)
    frozen = study.get_trials(deepcopy=False)[-1]
    if host is not None:
        beat = {"time": time.time() - beat_age, "host": host, "pid": pid}
        study._storage.set_trial_system_attr(frozen._trial_id, HEARTBEAT, beat)
    return frozen.number


def test_journal_heartbeat_fails_and_requeues_only_dead_trials(tmp_path):
    retry = RecordingRetry()
    storage = open_storage(str(tmp_path / "s.journal"), BEAT, retry)
    assert isinstance(storage, JournalHeartbeatStorage)
    study = optuna.create_study(storage=storage, study_name="s")
    host = storage.host
    alive = running_trial(study, host, os.getpid())
    dead = running_trial(study, host, dead_pid())
    silent = running_trial(study, "elsewhere", 1, beat_age=60, started_ago=120)
    remote = running_trial(study, "elsewhere", dead_pid())
    # a retried trial inherits its predecessor's last beat: older than its own start
    inherited = running_trial(study, host, dead_pid(), beat_age=60)
    never_beat = running_trial(study, None, started_ago=60)

    fail_stale(study)

    states = {t.number: t.state for t in study.get_trials()}
    assert states[alive] == states[remote] == states[inherited] == TrialState.RUNNING
    assert states[dead] == states[silent] == states[never_beat] == TrialState.FAIL
    assert sorted(retry.seen) == sorted([dead, silent, never_beat])
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 3
    assert {t.system_attrs["failed_trial"] for t in waiting} == {dead, silent, never_beat}
    assert all(t.params == {"ot.epsilon": 0.1} for t in waiting)


def test_running_trial_beats_while_the_objective_runs(tmp_path):
    storage = open_storage(str(tmp_path / "s.journal"), BEAT)
    study = optuna.create_study(storage=storage, study_name="s")
    beats: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        for _ in range(3):
            time.sleep(1.1)
            frozen = study.get_trials(deepcopy=False)[-1]
            beats.append(frozen.system_attrs[HEARTBEAT]["time"])
        return 1.0

    study.optimize(objective, n_trials=1)
    assert len(set(beats)) >= 2 and beats == sorted(beats)
    assert trial_counts(study)["complete"] == 1


def test_a_second_process_sees_the_same_journal(tmp_path):
    path = tmp_path / "s.journal"
    study = optuna.create_study(storage=open_storage(str(path), BEAT), study_name="s")
    study.enqueue_trial({"x": 1})
    code = (
        "import optuna, sys;"
        "s = optuna.load_study(study_name='s', storage=optuna.storages.JournalStorage("
        "optuna.storages.journal.JournalFileBackend(sys.argv[1])));"
        "s.optimize(lambda t: t.suggest_int('x', 0, 3), n_trials=1)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert [t.value for t in study.get_trials()] == [1.0]


@pytest.mark.postgres
def test_missing_database_is_a_user_error(postgres_url):
    missing = postgres_url.rsplit("/", 1)[0] + "/scenellm_no_such_database"
    with pytest.raises(UserError, match="cannot open the study database"):
        open_storage(missing, BEAT)


@pytest.mark.postgres
def test_postgres_storage_has_optuna_heartbeat(postgres_url):
    storage = open_storage(postgres_url, BEAT)
    assert storage.get_heartbeat_interval() == 1
    study = optuna.create_study(storage=storage, study_name="pg")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert trial_counts(study)["complete"] == 2


def test_project_journal_default_lives_in_home(tmp_path):
    storage = open_storage(resolve_target(None, Project(tmp_path)), BEAT)
    optuna.create_study(storage=storage, study_name="s")
    assert (tmp_path / ".scenellm" / "optuna.journal").stat().st_size > 0
    assert Path(resolve_target(None, Project(tmp_path))).is_absolute()
