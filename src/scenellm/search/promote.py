"""Promote a study's best trial: evaluate it on the test split (the evaluate stage; its
finetune output is reused by fingerprint) and register it through the champion /
challenger rule of :mod:`scenellm.tracking.registry`, which compares the validation metric
(the same as the ``train`` flow's, so the scores are comparable); the test metric is
reported with the version. Neither the search nor the rule sees the test split.
"""

from __future__ import annotations

from typing import Any

import optuna

from scenellm.errors import UserError
from scenellm.project import Project
from scenellm.search.objective import RUN_ID
from scenellm.search.optimize import trial_counts
from scenellm.search.space import SearchConfig
from scenellm.search.study import BASE, DATA, PARENT, SEARCH


def promote_best(project: Project, study: optuna.Study, tracker) -> dict[str, Any]:
    """Evaluate the best trial on the test split and register it (champion rule)."""
    from scenellm.evaluation import PRIMARY_METRIC as PRIMARY
    from scenellm.evaluation import SELECTION_METRIC
    from scenellm.inference.bundle import example_request, staged_bundle
    from scenellm.stages.pipeline import resolve_data, run_until
    from scenellm.tracking.lineage import stage_tags
    from scenellm.tracking.registry import log_model, register_and_promote

    if not trial_counts(study)["complete"]:
        raise UserError(f"study '{study.study_name}' has no complete trial to promote.")
    best = study.best_trial
    search = SearchConfig.model_validate(study.user_attrs[SEARCH])
    params = search.trial_params(study.user_attrs[BASE], best.params)
    version = resolve_data(params, project)[1]
    if version != study.user_attrs[DATA]:
        raise UserError(
            f"data changed since study '{study.study_name}' ran "
            f"({study.user_attrs[DATA]} → {version}); run a new study."
        )
    results = run_until("evaluate", params, project)
    run_id = best.user_attrs[RUN_ID]
    metric = results["finetune"].metrics["best_" + SELECTION_METRIC]
    test = results["evaluate"].metrics[PRIMARY]
    tracker.log_metrics(run_id, {f"test_{k}": v for k, v in results["evaluate"].metrics.items()})
    tracker.set_tags(run_id, stage_tags(results["evaluate"]))
    with staged_bundle(results, params) as bundle:
        uri = log_model(tracker.client, run_id, bundle, input_example=example_request(
            project.data_root(params.data.root), results["prepare"].path))
    outcome = register_and_promote(tracker.client, run_id, uri, metric, version,
                                   report={PRIMARY: test})
    tags = {
        "scenellm.registered_version": outcome["version"],
        "scenellm.registered_alias": outcome["alias"],
    }
    tracker.set_tags(run_id, tags)
    tracker.set_tags(study.user_attrs[PARENT], {**tags, "scenellm.promoted_trial": best.number})
    return {**outcome, "trial": best.number, "run_id": run_id, "metric": metric}
