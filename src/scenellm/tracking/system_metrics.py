"""MLflow system metrics (``system/cpu_utilization_percentage``, memory, disk, network; GPU
when ``pynvml`` finds one) on a run addressed by id, sampled from a thread while a training
stage runs.

MLflow's fluent ``start_run(log_system_metrics=True)`` needs the global active run; its
:class:`~mlflow.system_metrics.system_metrics_monitor.SystemMetricsMonitor` takes the run id
and tracking URI explicitly, which is what stages logging from threads and processes need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

SAMPLING_SECONDS = 10.0  # MLflow's default; MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL wins


@contextmanager
def system_metrics(run_id: str, tracking_uri: str,
                   sampling_seconds: float = SAMPLING_SECONDS) -> Iterator[None]:
    """Sample system metrics onto ``run_id`` while the block runs; a block shorter than one
    interval still logs one sample, taken when it ends."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=sampling_seconds,
                                   tracking_uri=tracking_uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()  # joins the sampling thread
        if monitor._logging_step == 0:  # nothing published yet: one sample now
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
