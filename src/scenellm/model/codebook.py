"""EMA vector-quantization codebook with k-means init and dead-code restart.

Nearest-code lookup as in VQ-VAE (van den Oord et al. 2017, https://arxiv.org/abs/1711.00937).
The codebook is learned by exponential moving averages instead of a codebook loss (that paper's
appendix A.1; Razavi et al. 2019, VQ-VAE-2, https://arxiv.org/abs/1906.00446). Codes that fall
out of use are restarted on vectors of the current batch (Dhariwal et al. 2020, Jukebox,
https://arxiv.org/abs/2005.00341), which keeps the share of codes in use high.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scenellm.distributed import all_sum, from_rank_0


def perplexity(indices: Tensor, codebook_size: int) -> Tensor:
    """exp(H(p)) of the code histogram, p_k = #{i : indices_i = k} / N.

    K for a uniform assignment over K codes, 1 when every vector takes the same code.
    """
    return perplexity_from_counts(torch.bincount(indices.flatten(), minlength=codebook_size))


def perplexity_from_counts(counts: Tensor) -> Tensor:
    """exp(H(p)) with p_k = counts_k / sum(counts); counts (K,)."""
    counts = counts.float()
    p = counts / counts.sum().clamp(min=1)
    return torch.exp(-torch.special.xlogy(p, p).sum())  # xlogy: 0 log 0 = 0


def codes_in_use(counts: Tensor) -> int:
    """Number of codes with a non-zero count; counts (K,)."""
    return int((counts > 0).sum())


def squared_distances(x: Tensor, embed: Tensor, x_sq: Tensor | None = None) -> Tensor:
    """||x_i - e_k||^2 = ||x_i||^2 - 2 x_i . e_k + ||e_k||^2; x (N, D), embed (K, D) -> (N, K).

    ``x_sq``: ||x_i||^2 (N, 1) when the caller already has it (the same numbers)."""
    x_sq = x.pow(2).sum(1, keepdim=True) if x_sq is None else x_sq
    return x_sq - 2 * x @ embed.T + embed.pow(2).sum(1)


def cluster_sums(x: Tensor, assign: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per-cluster counts n_k (k,) and sums sum_{i: assign_i = k} x_i (k, D).

    A one-hot matmul rather than index_add_, whose float atomics are not deterministic on GPU.
    """
    one_hot = F.one_hot(assign, k).to(x.dtype)  # (N, k)
    return one_hot.sum(0), one_hot.T @ x


def sample_rows(x: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n rows of x (N, D) drawn at random, distinct when n <= N; generator is a CPU generator."""
    rows = x.shape[0]
    if n <= rows:
        picked = torch.randperm(rows, generator=generator)[:n]
    else:
        picked = torch.randint(rows, (n,), generator=generator)
    return x[picked.to(x.device)]


def kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """k seeds from the rows of x (N, D), each drawn with probability proportional to its
    squared distance to the nearest seed so far (Arthur & Vassilvitskii 2007) -> (k, D).

    Far better than k uniform rows at putting one seed in each well-separated cluster.
    """
    # ||x_i||^2 once: recomputed per seed, its (N, D) temporary, freed between small
    # allocations, left the heap growing by N·D floats per seed (1.3 GB for 10k × 64, K 512)
    x_sq = x.pow(2).sum(1, keepdim=True)  # (N, 1)
    rows = [torch.randint(x.shape[0], (1,), generator=generator).to(x.device)]
    nearest = squared_distances(x, x[rows[0]], x_sq).squeeze(1).clamp(min=0)  # (N,)
    for _ in range(k - 1):
        # All rows coincide with a seed (N < k or duplicates): fall back to uniform draws.
        weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)
        rows.append(torch.multinomial(weights.cpu(), 1, generator=generator).to(x.device))
        seed = x[rows[-1]]  # (1, D)
        nearest = torch.minimum(nearest, squared_distances(x, seed, x_sq).squeeze(1).clamp(min=0))
    return x[torch.cat(rows)]


def kmeans(
    x: Tensor, k: int, iters: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on x (N, D) from k-means++ seeds; returns centroids (k, D), sizes (k,).

    An empty cluster keeps its previous centroid (and reports size 0).
    """
    centroids = kmeans_plus_plus(x, k, generator)
    for _ in range(iters):
        counts, sums = cluster_sums(x, squared_distances(x, centroids).argmin(1), k)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    counts, _ = cluster_sums(x, squared_distances(x, centroids).argmin(1), k)
    return centroids, counts


class Codebook(nn.Module):
    """K codes of dimension D learned by EMA (no gradients reach them).

    Args:
        codebook_size: K, number of codes (SceneLLM: 512).
        code_dim: D, code dimension.
        decay: EMA decay gamma (0.99 in arXiv 1711.00937 appendix A.1 and arXiv 1906.00446).
        eps: Laplace smoothing of the cluster sizes, keeps rarely used codes finite.
        dead_threshold: a code whose EMA cluster size falls below this share of the uniform
            use N / K (N rows per batch) is restarted on a batch vector (Jukebox, arXiv
            2005.00341, restarts below an absolute 1.0 with batches far larger than K); 0
            turns restarts off. Relative, so that a batch smaller than K does not restart
            every code at every step.
        kmeans_init: initialise the codes by k-means on the first training batch
            (as in lucidrains/vector-quantize-pytorch); otherwise codes start as N(0, 1).
        kmeans_iters: Lloyd iterations of that k-means.
    """

    def __init__(
        self,
        codebook_size: int,
        code_dim: int,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_threshold: float = 0.1,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
    ) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.decay = decay
        self.eps = eps
        self.dead_threshold = dead_threshold
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        embed = torch.randn(codebook_size, code_dim)
        self.register_buffer("embed", embed)  # (K, D)
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # (K,) EMA of n_k
        self.register_buffer("embed_avg", embed.clone())  # (K, D) EMA of per-code sums
        # A buffer, not an attribute, so a reloaded trained codebook does not k-means again.
        self.register_buffer("initted", torch.tensor(not kmeans_init))

    def nearest(self, x: Tensor) -> Tensor:
        """Index of the nearest code (squared Euclidean) for each row of x (N, D) -> (N,)."""
        return squared_distances(x.to(self.embed.dtype), self.embed).argmin(1)

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """Quantize x (N, D) -> (quantized (N, D), indices (N,), stats).

        quantized holds the codes x was matched to, before this step's update. In training mode
        the codebook then takes one EMA step and restarts dead codes; in eval mode no buffer
        changes. stats: counts (K,), perplexity, usage (share of codes used), dead_restarted.
        """
        flat = x.detach().to(self.embed.dtype)
        if self.training and not self.initted:
            self.init_from_kmeans(flat, generator)
        indices = self.nearest(flat)  # (N,)
        quantized = self.embed[indices]  # a copy, unaffected by the update below
        counts, sums = cluster_sums(flat, indices, self.codebook_size)  # (K,), (K, D)
        dead_restarted = 0
        if self.training:  # data-parallel ranks step on the statistics of the whole batch
            rows = torch.tensor(float(flat.shape[0]), device=flat.device)
            all_sum(counts, sums, rows)
            self.update_ema(counts, sums)
            dead_restarted = self.restart_dead(flat, generator, rows=float(rows))
        stats = {
            "counts": counts,
            "perplexity": perplexity(indices, self.codebook_size),
            "usage": codes_in_use(counts) / self.codebook_size,
            "dead_restarted": dead_restarted,
        }
        return quantized.to(x.dtype), indices, stats

    @torch.no_grad()
    def init_from_kmeans(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Set the codes to k-means centroids of x (N, D), with EMA stats consistent with them.

        Callers should pass at least K distinct rows (the VQ-VAE stage passes its first
        encoder pass over the train features); fewer leave duplicate codes.
        """
        centroids, sizes = kmeans(x, self.codebook_size, self.kmeans_iters, generator)
        self.embed.copy_(centroids)
        self.cluster_size.copy_(sizes)
        self.embed_avg.copy_(centroids * sizes[:, None])  # an EMA of sums, not of means
        self.initted.fill_(True)

    @torch.no_grad()
    def update_ema(self, counts: Tensor, sums: Tensor) -> None:
        """One EMA step from batch counts n_k (K,) and sums (K, D).

        N_k <- g N_k + (1 - g) n_k;  m_k <- g m_k + (1 - g) sum_k x;
        Laplace: n = sum_k N_k, N~_k = (N_k + eps) / (n + K eps) * n;  e_k = m_k / N~_k.
        """
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, x: Tensor, generator: torch.Generator | None = None,
                     rows: float | None = None) -> int:
        """Move codes with EMA cluster size < t = dead_threshold · N / K onto random rows of
        x (N, D); N is ``rows`` (the whole batch over data-parallel ranks) or len(x).

        Their EMA stats restart as (c, c · vector) with c = max(N / K, t): at least a code's
        uniform share and never below t, so a restarted code is not dead on arrival. Under
        data parallelism rank 0's rows replace them on every rank.
        Returns the number of codes restarted.
        """
        share = (rows or x.shape[0]) / self.codebook_size  # uniform use N / K
        threshold = self.dead_threshold * share
        dead = self.cluster_size < threshold  # (K,)
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        vectors = sample_rows(x, n_dead, generator)  # (n_dead, D)
        from_rank_0(vectors)
        size = max(share, threshold)
        self.embed[dead] = vectors
        self.embed_avg[dead] = vectors * size
        self.cluster_size[dead] = size
        return n_dead
