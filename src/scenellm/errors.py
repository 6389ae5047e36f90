"""Errors a user can cause, and services that fail under a run; the CLI prints either as
one line, without a traceback (exit 2 and 1)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, params or files; the message names the file, field and fix."""


class DataError(UserError):
    """Unreadable, unsafe or malformed dataset files."""


class UnsafePickleError(DataError):
    """A pickle asked for a global outside the Action Genome allow-list."""


class TrainingDiverged(UserError):
    """A training stage's loss or metric became non-finite or exploded: its params (most
    often a learning rate) do not train; nothing of the run is kept."""


class ServiceError(Exception):
    """A service the run needs (the Prefect API, the MLflow store) stopped answering; the
    message says which, what was kept and what to do. ``exit_now``: leave without the
    exit-time work of libraries that would keep retrying the dead service."""

    def __init__(self, message: str, exit_now: bool = False) -> None:
        super().__init__(message)
        self.exit_now = exit_now


class ModelArtifactError(UserError):
    """A model (registry version, run or folder) lacks a file inference needs, or was
    logged in a layout this code does not read."""


class PredictionRequestError(UserError):
    """A prediction request names a data root, video or mode that cannot be predicted."""
