"""Log-domain entropic optimal transport (Sinkhorn), batched and differentiable.

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
"""

from __future__ import annotations

import torch

# Allowed relative gap between the total masses of a and b (float32 sums of ~1e3 terms).
MASS_RTOL = 1e-4


def sinkhorn(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    epsilon: float,
    max_iter: int = 100,
    tol: float = 1e-6,
    check_every: int = 10,
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

    Returns:
        plan: (B, n, m) or (n, m), same dtype and device as ``cost``.
    """
    _validate(cost, a, b, epsilon, max_iter, tol, check_every)
    unbatched = cost.dim() == 2
    if unbatched:
        cost, a, b = cost[None], a[None], b[None]
    a, b = a.to(cost), b.to(cost)
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
    plan = torch.exp(log_kernel + u[:, :, None] + v[:, None, :])  # (B, n, m)
    return plan[0] if unbatched else plan


def _logsumexp(x: torch.Tensor) -> torch.Tensor:
    """LSE over the last dim of a fresh temporary ``x``, shifted and exponentiated in place.

    The in-place ops are autograd-safe (``add`` and ``sub_`` save nothing, ``exp_`` saves its
    output) and avoid two (B, n, m) allocations per half-step. The shift is detached: the
    result does not depend on it. Each row holds some mass, so the shift is finite.
    """
    shift = x.detach().amax(dim=-1, keepdim=True)  # (..., 1)
    return torch.log(x.sub_(shift).exp_().sum(dim=-1)) + shift.squeeze(-1)


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
) -> None:
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
        flags = torch.stack(
            [
                ~torch.isfinite(cost).all(),
                ~(torch.isfinite(a).all() & torch.isfinite(b).all()),
                (a < 0).any() | (b < 0).any(),
                (mass_a <= 0).any(),
                ((mass_a - mass_b).abs() > MASS_RTOL * mass_a).any(),
            ]
        ).tolist()  # one host sync for all value checks
    messages = (
        "cost has non-finite entries",
        "a or b has non-finite entries",
        "a or b has negative mass",
        "a has zero total mass",
        f"a and b total masses differ by more than {MASS_RTOL:g} (relative)",
    )
    for flag, message in zip(flags, messages, strict=True):
        if flag:
            raise ValueError(f"sinkhorn: {message}")
