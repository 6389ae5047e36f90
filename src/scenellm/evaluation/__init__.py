"""Scene-graph evaluation: STTran's Recall@K (vectorized), mean recalls, frequency baseline.

Exports load lazily, so ``import scenellm.evaluation`` costs nothing; torch is imported only
when a video is evaluated.
"""

from __future__ import annotations

from importlib import import_module

__all__ = ["PRIMARY_METRIC", "SELECTION_METRIC", "FrequencyBaseline", "SceneGraphEvaluator"]

# The number a run is reported by: test-split PREDCLS recall@20 with constraint.
PRIMARY_METRIC = "predcls_with_R@20"
# The number anything is chosen by (early stopping, studies, the registry's champion rule):
# the same recall on the validation videos held out of the train split. The test split is
# reported, never used to choose.
SELECTION_METRIC = "val_predcls_R@20"

_WHERE = {
    "FrequencyBaseline": "scenellm.evaluation.baseline",
    "SceneGraphEvaluator": "scenellm.evaluation.evaluator",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'scenellm.evaluation' has no attribute {name!r}")
