"""EMA codebook: lookup, hand-computed EMA step, perplexity, dead-code restart, k-means init."""

from __future__ import annotations

import pytest
import torch

from scenellm.model.codebook import (
    Codebook,
    codes_in_use,
    kmeans,
    kmeans_plus_plus,
    perplexity,
    squared_distances,
)


def set_codes(cb: Codebook, codes: list[list[float]], sizes: list[float] | None = None) -> None:
    """Put the codebook in a known, consistent state: embed = codes, EMA stats (size, size*code)."""
    embed = torch.tensor(codes)  # (K, D)
    size = torch.tensor(sizes) if sizes is not None else torch.ones(len(codes))  # (K,)
    cb.embed.copy_(embed)
    cb.embed_avg.copy_(embed * size[:, None])
    cb.cluster_size.copy_(size)


def test_squared_distances_match_cdist() -> None:
    g = torch.Generator().manual_seed(0)
    x, e = torch.randn(7, 5, generator=g), torch.randn(4, 5, generator=g)
    torch.testing.assert_close(
        squared_distances(x, e), torch.cdist(x, e) ** 2, atol=1e-5, rtol=1e-5
    )


def test_squared_distances_take_known_row_norms_unchanged() -> None:
    g = torch.Generator().manual_seed(0)
    x, e = torch.randn(7, 5, generator=g), torch.randn(4, 5, generator=g)
    x_sq = x.pow(2).sum(1, keepdim=True)
    assert torch.equal(squared_distances(x, e, x_sq), squared_distances(x, e))


def reference_kmeans_plus_plus(x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """Arthur & Vassilvitskii's seeding written plainly: each seed drawn with weight the
    squared distance to the nearest seed so far (uniform when every weight is 0)."""
    seeds = x[torch.randint(x.shape[0], (1,), generator=g)]
    for _ in range(k - 1):
        nearest = squared_distances(x, seeds).clamp(min=0).min(1).values
        weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)
        seeds = torch.cat([seeds, x[torch.multinomial(weights, 1, generator=g)]])
    return seeds


@pytest.mark.parametrize("rows", [3, 40, 300])  # fewer rows than seeds: uniform fallback
def test_kmeans_plus_plus_draws_the_reference_seeds(rows: int) -> None:
    x = torch.randn(rows, 6, generator=torch.Generator().manual_seed(rows))
    seeds = kmeans_plus_plus(x, 8, torch.Generator().manual_seed(2))
    torch.testing.assert_close(seeds, reference_kmeans_plus_plus(x, 8,
                                                                 torch.Generator().manual_seed(2)))


def test_eval_quantizes_to_nearest_code_and_changes_no_buffer() -> None:
    torch.manual_seed(0)
    cb = Codebook(16, 8, kmeans_init=True).eval()
    before = {k: v.clone() for k, v in cb.state_dict().items()}
    x = torch.randn(50, 8)
    quantized, indices, stats = cb(x)
    assert torch.equal(quantized, cb.embed[indices])
    assert torch.equal(indices, torch.cdist(x, cb.embed).argmin(1))
    assert stats["dead_restarted"] == 0
    for name, value in cb.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_ema_step_matches_hand_computation() -> None:
    decay, eps = 0.9, 0.1
    cb = Codebook(2, 2, decay=decay, eps=eps, dead_threshold=0.0).train()
    set_codes(cb, [[0.0, 0.0], [10.0, 10.0]])
    x = torch.tensor([[1.0, 0.0], [2.0, 2.0], [9.0, 11.0]])  # codes 0, 0, 1
    quantized, indices, _ = cb(x)
    assert indices.tolist() == [0, 0, 1]
    # Matched against the codes before the update.
    assert quantized.tolist() == [[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]]
    # Batch: n = (2, 1); sums = ((3, 2), (9, 11)).
    size0 = 0.9 * 1.0 + 0.1 * 2  # 1.1
    size1 = 0.9 * 1.0 + 0.1 * 1  # 1.0
    avg0 = [0.9 * 0.0 + 0.1 * 3, 0.9 * 0.0 + 0.1 * 2]  # (0.3, 0.2)
    avg1 = [0.9 * 10.0 + 0.1 * 9, 0.9 * 10.0 + 0.1 * 11]  # (9.9, 10.1)
    n = size0 + size1  # 2.1
    smooth0 = (size0 + 0.1) / (n + 2 * 0.1) * n  # 1.2 / 2.3 * 2.1
    smooth1 = (size1 + 0.1) / (n + 2 * 0.1) * n  # 1.1 / 2.3 * 2.1
    expected_embed = [[a / smooth0 for a in avg0], [a / smooth1 for a in avg1]]
    assert expected_embed[0][0] == pytest.approx(0.69 / 2.52)
    assert expected_embed[1][1] == pytest.approx(23.23 / 2.31)
    torch.testing.assert_close(cb.cluster_size, torch.tensor([size0, size1]))
    torch.testing.assert_close(cb.embed_avg, torch.tensor([avg0, avg1]))
    torch.testing.assert_close(cb.embed, torch.tensor(expected_embed))


def test_perplexity_uniform_collapsed_and_by_hand() -> None:
    k = 8
    assert perplexity(torch.arange(k).repeat(3), k).item() == pytest.approx(k)
    assert perplexity(torch.zeros(20, dtype=torch.long), k).item() == pytest.approx(1.0)
    # p = (1/2, 1/4, 1/4): H = 1.5 ln 2, exp(H) = 2 ** 1.5.
    assert perplexity(torch.tensor([0, 0, 1, 2]), k).item() == pytest.approx(2**1.5)


def test_codes_in_use_counts_nonzero_codes() -> None:
    assert codes_in_use(torch.tensor([0.0, 3.0, 0.0, 1.0])) == 2
    assert codes_in_use(torch.zeros(4)) == 0


@pytest.mark.parametrize(("threshold", "reset_size"), [(0.5, 2.0), (1.0, 2.0), (2.0, 4.0)])
def test_dead_code_is_restarted_on_a_batch_vector(threshold: float, reset_size: float) -> None:
    # 4 rows, K = 2: the uniform use N / K is 2, so code 1 (EMA 0.99 after the step) is dead
    # under every threshold share here and restarts at max(N / K, threshold · N / K).
    cb = Codebook(2, 1, dead_threshold=threshold).train()
    set_codes(cb, [[0.0], [100.0]], sizes=[10.0, 1.0])
    x = torch.tensor([[0.5], [-0.5], [0.25], [-0.25]])  # all nearest to code 0
    _, indices, stats = cb(x, generator=torch.Generator().manual_seed(0))
    assert indices.tolist() == [0, 0, 0, 0]
    assert stats["dead_restarted"] == 1  # code 1: 0.99 < threshold · 2; code 0: 9.94 is not
    assert cb.embed[1].item() in x.flatten().tolist()
    assert cb.cluster_size[1].item() == reset_size
    assert cb.embed_avg[1].item() == pytest.approx(reset_size * cb.embed[1].item())
    assert cb.embed[0].abs().item() < 1.0  # the live code was not moved


def test_dead_threshold_is_relative_to_batch_rows_per_code() -> None:
    # EMA use 0.99 of code 1: alive for 2 rows over K = 2 codes (t = 0.6 · 1), dead for 4
    # rows (t = 0.6 · 2 = 1.2); an absolute threshold would treat both batches alike.
    for rows, restarted in ((2, 0), (4, 1)):
        cb = Codebook(2, 1, dead_threshold=0.6).train()
        set_codes(cb, [[0.0], [100.0]], sizes=[10.0, 1.0])
        _, _, stats = cb(torch.linspace(-0.5, 0.5, rows)[:, None],
                         generator=torch.Generator().manual_seed(0))
        assert stats["dead_restarted"] == restarted


def test_restart_off_when_threshold_zero() -> None:
    cb = Codebook(2, 1, dead_threshold=0.0).train()
    set_codes(cb, [[0.0], [100.0]])
    _, _, stats = cb(torch.tensor([[0.5], [-0.5]]))
    assert stats["dead_restarted"] == 0
    assert cb.embed[1].item() == pytest.approx(100.0)


def test_kmeans_init_finds_separated_clusters_once() -> None:
    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[-10.0, 0.0], [10.0, 0.0], [0.0, 10.0], [0.0, -10.0]])
    x = means.repeat(50, 1) + 0.1 * torch.randn(200, 2, generator=g)  # (200, 2)
    centroids, sizes = kmeans(x, 4, iters=10, generator=torch.Generator().manual_seed(1))
    order = torch.cdist(means, centroids).argmin(1)
    torch.testing.assert_close(centroids[order], means, atol=0.05, rtol=0)
    assert sorted(sizes.tolist()) == [50.0] * 4

    cb = Codebook(4, 2, dead_threshold=0.0, kmeans_init=True).train()
    assert not cb.initted
    cb(x, generator=torch.Generator().manual_seed(1))
    assert cb.initted
    torch.testing.assert_close(cb.embed[order], means, atol=0.05, rtol=0)
    # A later batch gets an EMA step, not a second k-means.
    far = torch.full((10, 2), 30.0)
    cb(far)
    assert torch.cdist(cb.embed, far[:1]).min() > 20.0
