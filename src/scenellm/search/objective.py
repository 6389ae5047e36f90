"""One Optuna trial: suggested params → the pipeline up to ``finetune`` → best epoch value.

The finetune stage reports the objective metric after every epoch (its checkpoint is
already saved), the pruner decides (except after the last epoch, when stopping saves
nothing), and :class:`optuna.TrialPruned` raised from the stage's metrics logger stops it
cleanly; its partial output stays, so the same params later resume from that epoch.
Upstream stages are shared through their fingerprints: features once,
one VQ-VAE per codebook size, whichever worker gets there first (the stage lock).

The trial's value is the best epoch of the metric (the epoch whose model the stage keeps
for the default metric); the test split is never used while searching. Each trial is an
MLflow child run of the study's parent run with the resolved params, per-epoch metrics,
lineage tags (stage fingerprints, data version, git) and its final Optuna state.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from mlflow.entities import Param

from scenellm.config.load import flatten
from scenellm.config.schema import Params
from scenellm.errors import UserError
from scenellm.stages.base import StageResult
from scenellm.stages.pipeline import run_until
from scenellm.tracking.lineage import stage_tags
from scenellm.tracking.runs import param_value

if TYPE_CHECKING:
    from scenellm.search.study import StudySession

TARGET = "finetune"
RUN_ID, WORKER = "mlflow_run_id", "worker"
STATE_TAG = "scenellm.trial_state"


def best_epoch_value(history: list[dict], metric: str, direction: str) -> float:
    """max (maximize) or min (minimize) of ``metric`` over the epochs of ``history``."""
    values = [float(r[metric]) for r in history if metric in r]
    if not values:
        keys = sorted({k for r in history for k in r})
        raise UserError(
            f"search.yaml: objective.metric '{metric}' is not a finetune epoch "
            f"metric; choose one of: {', '.join(keys)}."
        )
    return max(values) if direction == "maximize" else min(values)


def read_history(result: StageResult) -> list[dict]:
    return json.loads((Path(result.path) / "history.json").read_text())


def retried_trial_number(trial: optuna.Trial) -> int | None:
    """The dead trial this one re-runs (set by the heartbeat retry), or None."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    return frozen.system_attrs.get("failed_trial")


class TrialRun:
    """The bookkeeping of one running trial: reports, pruning, its MLflow child run
    (opened by :meth:`Objective.__call__` with ``Tracker.child_run``)."""

    def __init__(self, session: StudySession, trial: optuna.Trial, run_id: str,
                 params: Params) -> None:
        self.session, self.trial, self.run_id = session, trial, run_id
        self.metric = session.search.objective.metric
        self.last_epoch = params.finetune.phase_b_epochs + params.finetune.phase_c_epochs - 1
        trial.set_user_attr(RUN_ID, run_id)
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")

    def log_params(self, params) -> None:
        pairs = [Param(k, param_value(v)) for k, v in flatten(params).items()]
        self.session.tracker.client.log_batch(self.run_id, params=pairs)

    def on_result(self, result: StageResult) -> None:
        self.session.tracker.set_tags(self.run_id, stage_tags(result, seconds=True))
        self.trial.set_user_attr(
            f"stage.{result.name}",
            {
                "fingerprint": result.fingerprint,
                "reused": result.reused,
                "seconds": round(result.seconds, 3),
                "path": str(result.path),
            },
        )

    def log_metrics(self, stage: str, metrics: dict[str, float], step: int | None) -> None:
        """Per-epoch metrics of every stage; the finetune epochs also drive the pruner."""
        named = metrics if stage == TARGET else {f"{stage}.{k}": v for k, v in metrics.items()}
        self.session.tracker.log_metrics(self.run_id, named, step)
        if stage != TARGET:
            return
        if self.metric not in metrics:
            best_epoch_value([metrics], self.metric, "maximize")  # raises, naming the keys
        epoch = step or 0
        value = float(metrics[self.metric])
        self.trial.report(value, epoch)
        # after the last epoch there is nothing left to save: the trial completes
        if epoch < self.last_epoch and self.trial.should_prune():
            self.trial.set_user_attr("pruned_at_epoch", epoch)
            raise optuna.TrialPruned(f"epoch {epoch}: {self.metric} = {value:.4f}")

    def replay(self, history: list[dict]) -> None:
        """Report and log a reused output's epochs, so that its curve is in the study and
        the run like any other (nothing left to prune)."""
        for epoch, record in enumerate(history):
            self.session.tracker.log_metrics(self.run_id, record, epoch)
            if self.metric in record:
                self.trial.report(float(record[self.metric]), epoch)

    def state(self, state: str) -> None:
        self.session.tracker.set_tags(self.run_id, {STATE_TAG: state})


def trial_tags(session: StudySession, trial: optuna.Trial) -> dict[str, str]:
    tags = {
        **session.lineage,
        "scenellm.trial": str(trial.number),
        "scenellm.study_storage": session.storage_display,
    }
    retry_of = retried_trial_number(trial)
    if retry_of is not None:
        tags["scenellm.retry_of"] = str(retry_of)
    return tags


class Objective:
    """``study.optimize(Objective(session))``; remembers the trial numbers it ran."""

    def __init__(self, session: StudySession) -> None:
        self.session = session
        self.numbers: list[int] = []

    def __call__(self, trial: optuna.Trial) -> float:
        from scenellm.tracking.system_metrics import system_metrics

        s = self.session
        self.numbers.append(trial.number)
        params = s.search.trial_params(s.raw, s.search.suggest(trial))
        # a pruned trial's run ends FINISHED (its state tag says PRUNED); errors end it FAILED
        with s.tracker.child_run(s.parent_run_id, f"trial-{trial.number}",
                                 trial_tags(s, trial),
                                 finished_on=(optuna.TrialPruned,)) as run_id, \
                system_metrics(run_id, s.tracker.tracking_uri):
            run = TrialRun(s, trial, run_id, params)
            try:
                run.log_params(params)
                results = run_until(TARGET, params, s.project, on_result=run.on_result,
                                    log_metrics=run.log_metrics)
                history = read_history(results[TARGET])
                if results[TARGET].reused:  # same params as an earlier trial: its epochs
                    run.replay(history)
                value = best_epoch_value(history, run.metric, s.search.objective.direction)
            except optuna.TrialPruned:
                run.state("PRUNED")
                raise
            except BaseException:
                run.state("FAIL")
                raise
            s.tracker.log_metrics(run_id, {**results[TARGET].metrics, "objective": value})
            run.state("COMPLETE")
        return value
