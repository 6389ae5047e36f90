"""Third-party chatter filtered at the command line's edge (the library logs as it is):
messages that describe the libraries' internals, not the user's run."""

from __future__ import annotations

import logging
import warnings

# (logger, message start) pairs dropped wherever they are emitted.
DROPPED = (
    # A models-from-code pyfunc (ours) has no CloudPickle version to record, by design.
    ("mlflow.pyfunc", "The version of CloudPickle used to save the model could not be found"),
)
# Loggers (and their children) whose INFO lines are internals: GX's docs sites, MLflow's
# table migrations and system-metrics thread start/stop.
AT_WARNING = ("great_expectations", "mlflow.store.db.utils", "alembic", "mlflow.system_metrics")


class DropMessages(logging.Filter):
    """On the emitting logger (filters do not reach its children)."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def quiet_third_party() -> None:
    """Install the filters once per process."""
    for name, start in DROPPED:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) and f.start == start for f in logger.filters):
            logger.addFilter(DropMessages(start))
    for name in AT_WARNING:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*[Aa]ttempting to set identical low and high "
                                              "ylims.*")
