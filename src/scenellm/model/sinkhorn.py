"""Entropic optimal transport (Sinkhorn), batched and differentiable; the iteration runs in
the scaling domain when the cost spread allows it and in the log domain otherwise
(``domain="auto"``, below).

For a cost C (n, m) and marginals a (n,), b (m,) with equal total mass, the entropic plan is

    P* = argmin_{P >= 0, P 1 = a, Pᵀ 1 = b}  <P, C> + ε Σ_ij P_ij log P_ij,

the convention of POT's ``ot.sinkhorn(a, b, C, reg=ε)``. It has the form
P_ij = exp(u_i - C_ij / ε + v_j), and Sinkhorn alternates, in log space so that tiny ε cannot
overflow (Cuturi 2013; Feydy et al. 2019),

    v_j ← log b_j - LSE_i(u_i - C_ij / ε)
    u_i ← log a_i - LSE_j(v_j - C_ij / ε)

in POT's ``sinkhorn_log`` order (v first), so the rows of P match a exactly and convergence
is measured on the columns: err = ‖Pᵀ1 - b‖₂, checked after iterations 0, k, 2k, ... as POT
does. Zero masses get log 0 = -inf potentials and exactly zero rows/columns.

The same iteration in the scaling domain, with K = exp(-(C - min C) / ε), u = exp(u) and
v = exp(v) up to a constant,

    v ← b / (Kᵀ u)        u ← a / (K v)        P = diag(u) K diag(v),

gives the same iterates in exact arithmetic (the shift by min C cancels in P), and each half-step
is a batched matrix-vector product instead of an exp over (B, n, m): 10x faster on CPU, and
backward stores vectors instead of (B, n, m) tensors per iteration. It is safe only while
K's entries and the scalings stay far from under/overflow, i.e. while the spread
(max C - min C) / ε is moderate; ``domain="auto"`` takes it when the spread is at most
``SCALING_MAX_SPREAD[dtype]`` (e^-30 ≈ 1e-13 in float32, e^-300 ≈ 5e-131 in float64: the
scalings then span at most ~e^±(spread + log n + log 1/min mass), inside either range), and
the log domain otherwise. The OT aggregation's cost is normalised to [0, 1], so its spread is
1/ε: float32 takes the scaling domain for ε ≥ 1/30.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import cache
from typing import Literal

import numpy as np
import torch

# Allowed relative gap between the total masses of a and b (float32 sums of ~1e3 terms).
MASS_RTOL = 1e-4
# Largest (max C - min C) / ε for which ``domain="auto"`` iterates in the scaling domain.
SCALING_MAX_SPREAD = {torch.float32: 30.0, torch.float64: 300.0}
DOMAINS = ("auto", "log", "scaling")
# K bytes per chunk of the scaling domain's graph-free loop, fastest of 0.125-2 MiB on a
# 1 MiB L2 (64 problems of 512 × 64; chunks of 4 in float32, 2 in float64).
CHUNK_BYTES = {torch.float32: 1 << 19, torch.float64: 1 << 19}
# With more than one torch thread, the graph-free loop splits the batch over that many Python
# threads when each gets at least THREAD_MIN_BYTES of K, in calls of up to THREAD_CHUNK_BYTES:
# calls this large amortise the GIL's hand-over between threads (64 problems of 512 × 64 on
# 2 threads: 4 MiB calls 0.029 s float32 / 0.076 s float64 against one thread's 0.051 /
# 0.117 s in its 512 KiB chunks; 512 KiB calls on 2 threads 0.076 / 0.137 s).
THREAD_CHUNK_BYTES = 4 << 20
THREAD_MIN_BYTES = 1 << 20


class NonFiniteInput(ValueError):
    """The cost or a marginal holds NaN or ±inf (in training: weights that overflowed)."""


def sinkhorn(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int = 100,
    tol: float = 1e-6,
    check_every: int = 10,
    domain: Literal["auto", "log", "scaling"] = "auto",
) -> torch.Tensor:
    """Entropic OT plan(s), differentiable by autograd through the iterations.

    Args:
        cost: (B, n, m) or (n, m) float32/float64 cost matrices.
        a: (B, n) or (n,) nonnegative source masses.
        b: (B, m) or (m,) nonnegative target masses, same total mass as ``a``.
        epsilon: entropic regularisation ε > 0 (POT's ``reg``).
        max_iter: most Sinkhorn iterations (one v and one u update each).
        tol: stop once max over the batch of ‖Pᵀ1 - b‖₂ < tol; 0 runs all ``max_iter``.
        check_every: iterations between checks (one host sync each).
        domain: "log", "scaling", or "auto": scaling when the largest spread
            (max C - min C) / ε in the batch is at most ``SCALING_MAX_SPREAD[dtype]``.

    Returns:
        plan: (B, n, m) or (n, m), same dtype and device as ``cost``.
    """
    plan, _ = sinkhorn_status(cost, a, b, epsilon, max_iter, tol, check_every, domain)
    return plan


def sinkhorn_status(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int = 100,
    tol: float = 1e-6,
    check_every: int = 10,
    domain: Literal["auto", "log", "scaling"] = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sinkhorn`'s plan and, per problem, whether it converged: ‖Pᵀ1 - b‖₂ < tol
    after the last iteration ((B,) or () bool; all True when tol = 0 asks for every
    iteration). An unconverged plan's columns miss b: callers should report it.

    On CPU without a graph it runs on one torch thread: on a loaded 2-core machine two
    OpenMP threads made its (B, n, m) elementwise passes 5-10x slower (measured for 64 ×
    512 × 64), while one thread loses < 1 ms to them on an idle one."""
    graph = torch.is_grad_enabled() and any(x.requires_grad for x in (cost, a, b))
    threads = torch.get_num_threads()  # the graph-free loop's own threads (_scaling_in_place)
    with _one_thread() if cost.device.type == "cpu" and not graph else nullcontext():
        return _sinkhorn_status(cost, a, b, epsilon, max_iter, tol, check_every, domain,
                                threads)


def _sinkhorn_status(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int,
    tol: float,
    check_every: int,
    domain: str,
    threads: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    spread = _validate(cost, a, b, epsilon, max_iter, tol, check_every, domain)
    unbatched = cost.dim() == 2
    if unbatched:
        cost, a, b = cost[None], a[None], b[None]
    a, b = a.to(cost), b.to(cost)
    if domain == "auto":
        domain = "scaling" if spread <= SCALING_MAX_SPREAD[cost.dtype] else "log"
    if domain == "scaling":
        plan = _scaling_domain(cost, a, b, epsilon, max_iter, tol, check_every, threads)
    else:
        plan = _log_domain(cost, a, b, epsilon, max_iter, tol, check_every)
    with torch.no_grad():
        error = torch.linalg.vector_norm(plan.sum(dim=1) - b, dim=-1)  # (B,)
        converged = error < tol if tol > 0 else torch.ones_like(error, dtype=torch.bool)
    return (plan[0], converged[0]) if unbatched else (plan, converged)


def sinkhorn_fp32(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sinkhorn_status` in float32 or wider whatever autocast is active: under CUDA
    bf16 autocast the matmuls of the scaling domain would otherwise run in bf16 (plan
    errors ~3e-3 that no tolerance can meet) and training would differ from evaluation."""
    dtype = torch.promote_types(cost.dtype, torch.float32)
    with torch.autocast(cost.device.type, enabled=False):
        return sinkhorn_status(cost.to(dtype), a.to(dtype), b.to(dtype), epsilon,
                               max_iter=max_iter, tol=tol)


def _log_domain(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int,
    tol: float,
    check_every: int,
) -> torch.Tensor:
    """Batched (B, n, m) log-domain iteration: exact for any ε, one exp pass per half-step."""
    log_kernel = -cost / epsilon  # (B, n, m)
    # Both updates reduce over the contiguous last dim, which is ~2x faster on CPU.
    log_kernel_t = log_kernel.transpose(1, 2).contiguous()  # (B, m, n)
    log_a, log_b = _log(a), _log(b)
    u = torch.zeros_like(log_a)  # (B, n)
    v = torch.zeros_like(log_b)  # (B, m)
    for it in range(max_iter):
        v = log_b - _logsumexp(log_kernel_t + u[:, None, :])
        u = log_a - _logsumexp(log_kernel + v[:, None, :])
        if tol > 0 and it % check_every == 0 and _column_error(log_kernel_t, u, v, b) < tol:
            break
    return torch.exp(log_kernel + u[:, :, None] + v[:, None, :])  # (B, n, m)


def _scaling_domain(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int,
    tol: float,
    check_every: int,
    threads: int,
) -> torch.Tensor:
    """Batched (B, n, m) scaling-domain iteration; needs a moderate spread (module docstring).

    Every entry of K is in [e^-spread, 1], so K v > 0 wherever v holds mass and Kᵀ u > 0
    wherever u does: no division by zero, and zero masses give exactly zero scalings.
    """
    shift = cost.detach().amin(dim=(1, 2), keepdim=True)  # (B, 1, 1); cancels in P
    kernel = torch.sub(shift, cost).div_(epsilon).exp_()  # (B, n, m); in place on a fresh tensor
    if torch.is_grad_enabled() and any(x.requires_grad for x in (kernel, a, b)):
        u, v = _scaling_autograd(kernel, a, b, max_iter, tol, check_every)
        return u[:, :, None] * kernel * v[:, None, :]  # (B, n, m)
    with _one_blas_thread() if kernel.device.type == "cpu" else nullcontext():
        u, v = _scaling_in_place(kernel, a, b, max_iter, tol, check_every, threads)
    return kernel.mul_(u[:, :, None]).mul_(v[:, None, :])  # (B, n, m): P in K's memory


def _scaling_autograd(
    kernel: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    max_iter: int,
    tol: float,
    check_every: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalings u (B, n), v (B, m) with autograd's graph: fresh tensors every half-step."""
    # Both products as row vector @ matrix, (B, 1, k) @ (B, k, j): on CPU torch's batched
    # form is ~9x faster than matrix @ column vector (measured for 64 × 512 × 64, one thread).
    kernel_t = kernel.transpose(1, 2).contiguous()  # (B, m, n)
    u = torch.ones_like(a)  # (B, n): log-domain u = 0
    v = torch.ones_like(b)
    for it in range(max_iter):
        v = b / (u[:, None, :] @ kernel).squeeze(1)  # (B, m)
        u = a / (v[:, None, :] @ kernel_t).squeeze(1)  # (B, n)
        if tol > 0 and it % check_every == 0 and _scaling_error(kernel, u, v, b) < tol:
            break
    return u, v


@torch.no_grad()
def _scaling_in_place(
    kernel: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    max_iter: int,
    tol: float,
    check_every: int,
    threads: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_scaling_autograd`'s iterates without a graph, 2-4x faster on CPU.

    - On CPU the products and divisions are numpy's on the same memory (no copy): per call
      ~1 µs of overhead against torch's ~2-5, and OpenBLAS's gemv reads K 1.5-2x faster
      than the MKL path of torch's small ``bmm`` (64 problems of 512 × 64, one thread).
      Other devices run the same loop in torch.
    - ``out=`` buffers: no allocation per half-step.
    - K alone, no Kᵀ: u ← a / (K v) as matrix @ column, v ← b / (Kᵀ u) as row @ matrix,
      both on one copy of K, so a chunk needs half the cache.
    - Cache blocking: the batch runs in chunks of ``CHUNK_BYTES[dtype]`` of K, and each chunk
      runs every iteration up to the next convergence check before the next chunk starts,
      so its K stays in L2 instead of streaming the whole (B, n, m) batch from memory twice
      per iteration.
    - Fused checks: the check after iteration t needs Kᵀ u, which iteration t + 1 needs too;
      each chunk computes it while K is in cache, and the next iteration reuses it.
    - numpy's BLAS on one thread (the caller's ``_one_blas_thread``): a gemv this small
      loses to OpenBLAS's own threads (64 problems of 512 × 64, float64: 0.11 s on 2 of
      them against 0.07 s on 1, idle 2 cores).
    - Threads over the batch instead (``threads`` > 1, on CPU): each of up to ``threads``
      Python threads runs a contiguous part of the batch, in calls of up to
      ``THREAD_CHUNK_BYTES`` that release the GIL for long enough (numpy's matmul runs
      without it); the threads meet at every check. Small batches stay on one thread.
    The checks (after iterations 0, k, 2k, ...) see the whole batch, so the iterations run
    and the stopping iteration are those of the unblocked loop; the plans equal the autograd
    loop's up to rounding (different BLAS).
    """
    xp = np if kernel.device.type == "cpu" else torch
    parts, chunk = _batch_parts(kernel, threads if xp is np else 1)
    if xp is np:
        kernel, a, b = (x.detach().numpy() for x in (kernel, a, b))
    u, v = xp.ones_like(a), xp.ones_like(b)  # (B, n), (B, m): log-domain u = v = 0
    u_sum, v_sum = xp.empty_like(u), xp.empty_like(v)  # K v, Kᵀ u
    error = xp.zeros_like(v[:, 0])  # (B,) ‖Pᵀ1 - b‖₂ at the last check
    start, fresh = 0, False  # fresh: v_sum holds Kᵀ u of the current u

    @np.errstate(all="ignore")  # inf and NaN pass silently, as in torch; per thread
    def iterate(part: range) -> None:
        """Iterations start..stop - 1 of the problems in ``part``, chunk by chunk."""
        for lo in range(part.start, part.stop, chunk):
            rows = slice(lo, min(lo + chunk, part.stop))
            k = kernel[rows]  # (c, n, m)
            u_row, v_row = u[rows, None], v[rows, None]  # (c, 1, n), (c, 1, m)
            u_col, v_col = u[rows, :, None], v[rows, :, None]  # (c, n, 1), (c, m, 1)
            u_s, v_s = u_sum[rows, :, None], v_sum[rows, None]  # (c, n, 1), (c, 1, m)
            a_c, b_c = a[rows, :, None], b[rows, None]  # (c, n, 1), (c, 1, m)
            for it in range(start, stop):
                if not (fresh and it == start):
                    xp.matmul(u_row, k, out=v_s)
                xp.divide(b_c, v_s, out=v_row)
                xp.divide(a_c, xp.matmul(k, v_col, out=u_s), out=u_col)
            if check:
                column = v_row * xp.matmul(u_row, k, out=v_s) - b_c  # (c, 1, m) Pᵀ1 - b
                error[rows] = (column * column).sum(-1)[:, 0] ** 0.5

    while start < max_iter:
        # run up to and including the next checked iteration (0, k, 2k, ...)
        checked = -(-start // check_every) * check_every if tol > 0 else max_iter - 1
        stop = min(checked + 1, max_iter)
        check = tol > 0 and stop == checked + 1
        if len(parts) == 1:
            iterate(parts[0])
        else:
            list(_thread_pool(len(parts)).map(iterate, parts))  # list(): re-raises
        start, fresh = stop, check
        if check and float(error.max()) < tol:
            break
    if xp is np:
        u, v = torch.from_numpy(u), torch.from_numpy(v)
    return u, v


def _batch_parts(kernel: torch.Tensor, threads: int) -> tuple[list[range], int]:
    """The graph-free loop's contiguous parts of the batch, one per thread, and its chunk
    (problems per call): one part in ``CHUNK_BYTES`` chunks, or as many parts as
    ``threads`` allows with at least ``THREAD_MIN_BYTES`` of K each, in calls of up to
    ``THREAD_CHUNK_BYTES``."""
    batch = kernel.shape[0]
    problem = kernel[0].numel() * kernel.element_size()  # bytes of one problem's K
    workers = max(1, min(threads, batch * problem // THREAD_MIN_BYTES, batch))
    if workers == 1:
        return [range(batch)], max(1, CHUNK_BYTES[kernel.dtype] // problem)
    edges = np.linspace(0, batch, workers + 1).round().astype(int).tolist()
    parts = [range(lo, hi) for lo, hi in zip(edges, edges[1:], strict=False)]
    return parts, max(1, min(len(parts[0]), THREAD_CHUNK_BYTES // problem))


@cache
def _thread_pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="sinkhorn")


# A forked child has none of the parent's threads, but would inherit a pool that believes it
# has them and would wait forever for them: it starts its own.
os.register_at_fork(after_in_child=_thread_pool.cache_clear)


@cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # ~1 ms: scans the loaded libraries once


def _one_blas_thread():
    """numpy's BLAS on one thread inside, the caller's count restored after (~10 µs)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@torch.no_grad()
def _scaling_error(kernel: torch.Tensor, u: torch.Tensor, v: torch.Tensor, b: torch.Tensor) -> float:
    """max_batch ‖Pᵀ1 - b‖₂ with Pᵀ1 = v ⊙ Kᵀu; one host sync."""
    column = v * (u[:, None, :] @ kernel).squeeze(1)  # (B, m)
    return torch.linalg.vector_norm(column - b, dim=-1).max().item()


def _logsumexp(x: torch.Tensor) -> torch.Tensor:
    """LSE over the last dim of a fresh temporary ``x``, shifted and exponentiated in place.

    The in-place ops are autograd-safe (``add`` and ``sub_`` save nothing, ``exp_`` saves its
    output) and avoid two (B, n, m) allocations per half-step. The shift is detached: the
    result does not depend on it. Each row holds some mass, so the shift is finite.
    """
    shift = x.detach().amax(dim=-1, keepdim=True)  # (..., 1)
    return torch.log(x.sub_(shift).exp_().sum(dim=-1)) + shift.squeeze(-1)


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside, the caller's count restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _log(mass: torch.Tensor) -> torch.Tensor:
    """log with log 0 = -inf and a zero (not NaN) gradient at 0."""
    positive = mass > 0
    return torch.where(positive, torch.log(torch.where(positive, mass, 1.0)), -torch.inf)


@torch.no_grad()
def _column_error(
    log_kernel_t: torch.Tensor, u: torch.Tensor, v: torch.Tensor, b: torch.Tensor
) -> float:
    """max_batch ‖Pᵀ1 - b‖₂ with Pᵀ1 = exp(v + LSE_i(u_i - C_ij/ε)); one host sync."""
    column = torch.exp(v + _logsumexp(log_kernel_t + u[:, None, :]))  # (B, m)
    return torch.linalg.vector_norm(column - b, dim=-1).max().item()


def _validate(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int,
    tol: float,
    check_every: int,
    domain: str,
) -> float:
    """Raise ValueError on bad input; return the largest spread (max C - min C) / ε."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    if cost.dim() not in (2, 3):
        raise ValueError(f"cost must be (n, m) or (B, n, m), got shape {tuple(cost.shape)}")
    if cost.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"cost must be float32 or float64, got {cost.dtype}")
    a_shape, b_shape = (*cost.shape[:-1],), (*cost.shape[:-2], cost.shape[-1])
    if a.shape != a_shape or b.shape != b_shape:
        raise ValueError(
            f"for cost {tuple(cost.shape)}, a and b must have shapes {a_shape} and {b_shape}, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if cost.numel() == 0:
        raise ValueError(f"cost must be non-empty, got shape {tuple(cost.shape)}")
    if not a.is_floating_point() or not b.is_floating_point():
        raise ValueError(f"a and b must be floating point, got {a.dtype} and {b.dtype}")
    if not epsilon > 0 or epsilon == float("inf"):
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon}")
    if max_iter < 1 or check_every < 1 or not tol >= 0:
        raise ValueError(
            f"need max_iter >= 1, check_every >= 1, tol >= 0; got {max_iter}, {check_every}, {tol}"
        )
    with torch.no_grad():
        a, b = a.to(cost), b.to(cost)
        mass_a, mass_b = a.sum(-1), b.sum(-1)
        flat = cost.reshape(-1, cost.shape[-2] * cost.shape[-1])
        # NaN and ±inf in the cost reach the spread (amax/amin propagate NaN; inf - x = inf,
        # inf - inf = NaN): checking it saves a pass over the cost
        spread = (flat.amax(dim=-1) - flat.amin(dim=-1)).max()
        flags = torch.stack(
            [
                ~torch.isfinite(spread),
                ~(torch.isfinite(a).all() & torch.isfinite(b).all()),
                (a < 0).any() | (b < 0).any(),
                (mass_a <= 0).any(),
                ((mass_a - mass_b).abs() > MASS_RTOL * mass_a).any(),
            ]
        )
        # one host sync for all value checks and the spread
        values = torch.cat([flags.to(cost.dtype), spread[None]]).tolist()
        flags, spread = values[:-1], values[-1]
    messages = (
        "cost has non-finite entries",
        "a or b has non-finite entries",
        "a or b has negative mass",
        "a has zero total mass",
        f"a and b total masses differ by more than {MASS_RTOL:g} (relative)",
    )
    for i, (flag, message) in enumerate(zip(flags, messages, strict=True)):
        if flag:
            raise (NonFiniteInput if i < 2 else ValueError)(f"sinkhorn: {message}")
    return spread / epsilon
