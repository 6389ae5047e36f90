"""The worker loop: run trials until the study holds N finished ones.

``--trials N`` is the number of finished (complete or pruned) trials the study
ends with, however many workers and re-runs it takes. Before each trial a worker fails
stale trials (dead workers, see :mod:`scenellm.search.storage`), then stops once N are
finished, waits while the running ones could reach N, or runs one more trial. Two workers
starting a trial at the same instant can overshoot N by one each.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from scenellm.search.objective import Objective
from scenellm.search.study import StudySession, TuneRequest, open_study


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state (``complete``, ``pruned``, ``fail``, ...) and ``finished``."""
    counts = {s.name.lower(): 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    counts["finished"] = counts["complete"] + counts["pruned"]
    return counts


def fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def optimize(
    session: StudySession, n_trials: int, poll_seconds: float | None = None
) -> dict[str, Any]:
    """Run trials until the study holds ``n_trials`` finished ones (see the module);
    returns this worker's trial numbers and the study's final counts."""
    study = session.study
    objective = Objective(session)
    poll = poll_seconds or min(5.0, float(session.search.heartbeat.interval))
    session.tracker.set_tags(session.parent_run_id, {"scenellm.trials_requested": n_trials})
    # the study's parent run outlives this worker; it ends with this worker's outcome
    with session.tracker.ending(session.parent_run_id):
        try:
            while True:
                fail_stale(study)
                counts = trial_counts(study)
                if counts["finished"] >= n_trials:
                    break
                if counts["finished"] + counts["running"] >= n_trials:
                    time.sleep(poll)
                    continue
                study.optimize(objective, n_trials=1, gc_after_trial=True)
        finally:
            record_totals(session, trial_counts(study))
    return {"ran": objective.numbers, "counts": counts}


def record_totals(session: StudySession, counts: dict[str, int]) -> None:
    """Latest study totals and best value on the parent run (the last worker's write wins)."""
    tracker, parent = session.tracker, session.parent_run_id
    tracker.set_tags(parent, {f"scenellm.trials_{k}": v for k, v in counts.items() if v})
    if counts["complete"]:
        best = session.study.best_trial
        tracker.set_tags(parent, {"scenellm.best_trial": best.number})
        tracker.log_metrics(
            parent,
            {
                "best_value": best.value,
                "trials_finished": counts["finished"],
                "trials_pruned": counts["pruned"],
            },
        )


def run_worker(request: TuneRequest, n_trials: int) -> dict[str, Any]:
    """Join (or create) the study and work on it until it is done."""
    session = open_study(request)
    return {
        "study": request.study,
        "storage": session.storage_display,
        "parent_run_id": session.parent_run_id,
        **optimize(session, n_trials),
    }
