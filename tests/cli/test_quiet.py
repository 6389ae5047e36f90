"""Third-party chatter is filtered at the CLI's edge; real warnings still pass."""

from __future__ import annotations

import logging

from scenellm.cli.quiet import quiet_third_party


def test_cloudpickle_note_and_gx_info_are_dropped_but_warnings_pass(caplog):
    quiet_third_party()
    quiet_third_party()  # idempotent: one filter per logger
    assert len(logging.getLogger("mlflow.pyfunc").filters) == 1
    with caplog.at_level(logging.INFO):
        logging.getLogger("mlflow.pyfunc").warning(
            "The version of CloudPickle used to save the model could not be found in the "
            "MLmodel configuration")
        logging.getLogger("mlflow.pyfunc").warning("a real problem")
        logging.getLogger("great_expectations.data_context").info("docs site at /tmp/x")
        logging.getLogger("mlflow.system_metrics.system_metrics_monitor").info("Started")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["a real problem"]
