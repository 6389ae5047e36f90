"""Paired video bootstrap against a loop over explicit resamples."""

from __future__ import annotations

import numpy as np
import pytest

from scenellm.evaluation.bootstrap import interval, paired_difference


def loop_reference(variant, full, counts, samples, seed):
    """The same statistic, one resample at a time (same generator, same draws)."""
    gen = np.random.default_rng(seed)
    v = len(counts)
    weights = gen.multinomial(v, np.full(v, 1 / v), size=samples)
    boot = []
    for w in weights:
        picked = np.repeat(np.arange(v), w)  # the resampled videos, with repeats
        frames = counts[picked].sum()
        boot.append(np.mean([(variant[s, picked].sum() - full[s, picked].sum()) / frames
                             for s in range(variant.shape[0])]))
    return np.quantile(boot, [0.025, 0.975])


def test_paired_difference_matches_a_loop_over_resamples():
    rng = np.random.default_rng(3)
    counts = rng.integers(3, 20, size=25).astype(float)
    full = rng.uniform(0, 1, (3, 25)) * counts
    variant = np.clip(full + rng.normal(0.05, 0.2, (3, 25)) * counts, 0, counts)
    d = paired_difference(variant, full, counts, samples=500, seed=7)
    low, high = loop_reference(variant, full, counts, 500, 7)
    assert d.low == pytest.approx(low, abs=1e-12) and d.high == pytest.approx(high, abs=1e-12)
    expected = np.mean([(variant[s].sum() - full[s].sum()) / counts.sum() for s in range(3)])
    assert d.mean == pytest.approx(expected, abs=1e-12)


def test_a_constant_gain_is_significant_and_no_change_is_not():
    counts = np.full(40, 10.0)
    full = np.linspace(2, 8, 40)[None].repeat(3, 0)
    better = paired_difference(full + 1.0, full, counts, samples=300)  # +0.1 every video
    assert better.mean == pytest.approx(0.1) and better.low == pytest.approx(0.1)
    assert better.significant
    same = paired_difference(full, full, counts, samples=300)
    assert same.mean == 0 and same.low == 0 and same.high == 0 and not same.significant


def test_an_unpaired_interval_brackets_the_mean():
    rng = np.random.default_rng(0)
    counts = rng.integers(5, 15, size=30).astype(float)
    sums = rng.uniform(0, 1, (2, 30)) * counts
    mean, low, high = interval(sums, counts, samples=400)
    assert low < mean < high
    assert mean == pytest.approx(np.mean(sums.sum(1) / counts.sum()))
