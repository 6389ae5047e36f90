"""Paired video bootstrap of a recall difference between two predictors over seeds.

Recall@K is a mean over frames. With, for seed s and test video v, the sum of per-frame
recalls ``S[s, v]`` and the frame count ``N[v]`` (the same frames for every predictor), a
set of videos drawn with replacement (counts ``w``) scores ``Σ_v w_v S[s, v] / Σ_v w_v N[v]``.
The difference of variant and full model is averaged over seeds, and its 95 % interval comes
from ``samples`` resamples of the videos, the same resample for both predictors (paired).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Difference:
    mean: float  # variant − full, averaged over seeds, on all test videos
    low: float  # 2.5 % quantile of the bootstrap distribution
    high: float  # 97.5 %

    @property
    def significant(self) -> bool:
        """True when the 95 % interval excludes 0."""
        return self.low > 0 or self.high < 0


def recall(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Recall per seed: sums (seeds, V), counts (V,) → (seeds,)."""
    return sums.sum(1) / counts.sum()


def paired_difference(variant: np.ndarray, full: np.ndarray, counts: np.ndarray,
                      samples: int = 2000, seed: int = 0) -> Difference:
    """``variant`` and ``full`` (seeds, V) per-video recall sums, ``counts`` (V,) frames."""
    variant, full = np.atleast_2d(variant), np.atleast_2d(full)
    counts = np.asarray(counts, dtype=np.float64)
    gen = np.random.default_rng(seed)
    weights = gen.multinomial(len(counts), np.full(len(counts), 1 / len(counts)),
                              size=samples).astype(np.float64)  # (B, V)
    frames = weights @ counts  # (B,)
    diff = ((weights @ variant.T) - (weights @ full.T)) / frames[:, None]  # (B, seeds)
    boot = diff.mean(1)
    point = float((recall(variant, counts) - recall(full, counts)).mean())
    low, high = np.quantile(boot, [0.025, 0.975])
    return Difference(point, float(low), float(high))


def interval(sums: np.ndarray, counts: np.ndarray, samples: int = 2000,
             seed: int = 0) -> tuple[float, float, float]:
    """(mean over seeds, 2.5 %, 97.5 %) of one predictor's recall, videos resampled."""
    sums = np.atleast_2d(sums)
    gen = np.random.default_rng(seed)
    weights = gen.multinomial(len(counts), np.full(len(counts), 1 / len(counts)),
                              size=samples).astype(np.float64)
    boot = ((weights @ sums.T) / (weights @ np.asarray(counts, float))[:, None]).mean(1)
    low, high = np.quantile(boot, [0.025, 0.975])
    return float(recall(sums, np.asarray(counts, float)).mean()), float(low), float(high)
