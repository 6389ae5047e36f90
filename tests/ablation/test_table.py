"""The ablation table's distance columns and time per epoch, from hand-made cell results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from scenellm.ablation.table import build_table, render_markdown

KS = (10, 20, 50, 100)


@dataclass
class _Cell:
    variant: str


@dataclass
class _Result:
    cell: _Cell
    near: list[float]  # per video R@20 sums of the near bucket
    seconds: float
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        self.metrics = {"finetune_epoch_seconds": self.seconds}

    def per_video(self) -> dict:
        whos = ("model", "baseline", "trees", "trees_temporal")
        flat = {f"R@{k}": [1.0, 1.0, 1.0] for k in KS}
        bucket = {"near": {"frames": [2, 0, 2], **{f"R@{k}": self.near for k in KS}},
                  "far": {"frames": [0, 0, 0], **{f"R@{k}": [0.0] * 3 for k in KS}}}
        return {"frames": {"predcls": [2, 2, 2]},
                "recall_sums": {"predcls": {w: flat for w in whos}},
                "distance": {"predcls": {w: bucket for w in whos}}}


def test_distance_columns_resample_only_videos_holding_the_bucket_and_time_is_averaged():
    results = [_Result(_Cell("full"), [1.0, 0.0, 1.0], 10.0),
               _Result(_Cell("full"), [2.0, 0.0, 1.0], 14.0),
               _Result(_Cell("moe"), [2.0, 0.0, 2.0], 20.0),
               _Result(_Cell("moe"), [2.0, 0.0, 2.0], 22.0)]
    table = build_table(results, samples=200)
    full, moe = table["rows"][0], table["rows"][1]
    # near R@20 = Σ sums / Σ frames over the videos with near frames (2 + 2), mean of seeds
    assert full["predcls_near_R@20"]["mean"] == pytest.approx(np.mean([2 / 4, 3 / 4]))
    assert moe["predcls_near_R@20"]["mean"] == pytest.approx(1.0)
    assert moe["predcls_near_R@20"]["diff"] == pytest.approx(1.0 - 5 / 8)
    assert np.isfinite(full["predcls_near_R@20"]["low"])  # no resample without frames
    assert full["predcls_far_R@20"] == {"mean": None}  # no video holds a far relation
    assert full["s/epoch"]["seconds"] == pytest.approx(12.0)
    assert moe["s/epoch"]["seconds"] == pytest.approx(21.0)
    assert table["rows"][-1]["s/epoch"]["seconds"] is None  # references do not train
    text = render_markdown(table, "components")
    assert "| moe | 2 |" in text and "| 21.0 |" in text
