"""Run a stage and everything upstream of it, reusing complete outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scenellm.config.schema import Params
from scenellm.data.version import data_version
from scenellm.project import Project
from scenellm.stages.base import StageResult, run_stage
from scenellm.stages.registry import stage_module, upstream_closure

MetricsLogger = Callable[[str, dict[str, float], int | None], None]


def resolve_data(params: Params, project: Project) -> tuple[Path, str]:
    """The configured data root and its DVC md5 (the data version)."""
    root = project.data_root(params.data.root)
    return root, data_version(root, cache_dir=project.home)


def run_one(name: str, params: Params, project: Project, data_root: Path, version: str,
            results: dict[str, StageResult], log_metrics: MetricsLogger | None = None,
            ) -> StageResult:
    module = stage_module(name)
    inputs = {dep: results[dep] for dep in module.SPEC.upstream}
    logger = (lambda m, step=None: log_metrics(name, m, step)) if log_metrics else None
    return run_stage(module.SPEC, module.run, params, project, data_root, version, inputs,
                     log_metrics=logger, verify=getattr(module, "verify", None))


def run_until(target: str, params: Params, project: Project,
              on_result: Callable[[StageResult], None] | None = None,
              log_metrics: MetricsLogger | None = None) -> dict[str, StageResult]:
    data_root, version = resolve_data(params, project)
    results: dict[str, StageResult] = {}
    for name in upstream_closure(target):
        results[name] = run_one(name, params, project, data_root, version, results, log_metrics)
        if on_result:
            on_result(results[name])
    return results
