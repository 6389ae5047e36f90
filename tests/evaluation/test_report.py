"""The evaluation plots: every K of recall and mean recall with the run's ids, no panel for
a mode without scored frames, per-predicate support that tells "no test example" from a
recall of 0."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scenellm.evaluation.mean_recall import KS, PredicateTally
from scenellm.evaluation.report import (
    plot_per_predicate,
    plot_recalls,
    predicate_rows,
    predicate_support,
    scored_modes,
)

NAMES = ["looking_at", "holding", "sitting_on"]


def summary(recall: float, per_predicate: dict, support: dict) -> dict:
    return {**{f"R@{k}": recall for k in KS}, **{f"mR@{k}": recall / 2 for k in KS},
            **{f"mR@{k}_frame": recall / 2 for k in KS},
            "per_predicate": {k: per_predicate for k in KS}, "support": support}


@pytest.fixture
def results() -> dict:
    support = {"looking_at": 4, "holding": 2, "sitting_on": 0}
    seen = {"looking_at": 0.5, "holding": 0.0}
    nan = summary(float("nan"), {}, dict.fromkeys(NAMES, 0))
    return {who: {"predcls": {c: summary(r, seen, support) for c in ("with", "no")},
                  "sgcls": {c: nan for c in ("with", "no")}}
            for who, r in (("model", 0.4), ("baseline", 0.3))}


def test_a_mode_without_scored_frames_gets_no_panel(results, tmp_path):
    assert scored_modes(results) == ["predcls"]
    plot_recalls(results, tmp_path / "recall.png", "data abc · evaluate def")
    one_mode = Image.open(tmp_path / "recall.png").size
    results["model"]["sgcls"] = results["model"]["predcls"]
    plot_recalls(results, tmp_path / "both.png")
    assert Image.open(tmp_path / "both.png").size[1] > one_mode[1]


def test_per_predicate_rows_carry_support_and_mark_missing_examples(results, tmp_path):
    rows = predicate_rows(results)
    assert [(r["name"], r["support"], r["model"]) for r in rows] == [
        ("looking_at", 4, 0.5), ("holding", 2, 0.0), ("sitting_on", 0, None)]
    plot_per_predicate(results, tmp_path / "pp.png", ids="data abc")
    assert (tmp_path / "pp.png").stat().st_size > 0


def test_support_counts_every_predicate_including_unseen():
    from types import SimpleNamespace

    tally = PredicateTally(len(NAMES))
    tally.add(frame=np.array([0, 0, 1]), predicate=np.array([0, 0, 1]),
              best=np.array([1, 30, 200]), n_frames=2)
    evaluator = SimpleNamespace(_tally=tally, AG_all_predicates=NAMES)
    assert predicate_support(evaluator) == {"looking_at": 2, "holding": 1, "sitting_on": 0}
    assert "sitting_on" not in tally.summary(NAMES)["per_predicate"][20]
