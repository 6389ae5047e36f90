"""sinkhorn against POT's ``sinkhorn_log``, finite differences and its own invariants."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import ot
import pytest
import torch

from scenellm.model.sinkhorn import sinkhorn, sinkhorn_fp32, sinkhorn_status


def _problem(rng: np.random.Generator, n: int, m: int, batch: tuple[int, ...] = ()):
    cost = rng.random((*batch, n, m))
    a = rng.random((*batch, n))
    b = rng.random((*batch, m))
    return cost, a / a.sum(-1, keepdims=True), b / b.sum(-1, keepdims=True)


def _pot(a, b, cost, epsilon, max_iter, tol):
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.simplefilter("ignore")  # "did not converge" for fixed-iteration runs
        return ot.sinkhorn(
            a, b, cost, epsilon, method="sinkhorn_log", numItermax=max_iter, stopThr=tol
        )


def _t(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(x)) for x in arrays]


@pytest.mark.parametrize("domain", ["log", "scaling", "auto"])
@pytest.mark.parametrize("tol", [1e-9, 1e-4])
def test_matches_pot_sinkhorn_log_on_random_problems(tol, domain):
    # spreads 1/ε up to 100: inside float64's scaling range, so all three domains apply
    for seed in range(50):
        rng = np.random.default_rng(seed)
        n, m = int(rng.integers(1, 40)), int(rng.integers(1, 30))
        epsilon = float(10 ** rng.uniform(-2, 0))
        cost, a, b = _problem(rng, n, m)
        expected = _pot(a, b, cost, epsilon, 5000, tol)
        plan = sinkhorn(*_t(cost, a, b), epsilon, max_iter=5000, tol=tol, domain=domain)
        assert plan.shape == (n, m)
        torch.testing.assert_close(
            plan, torch.from_numpy(expected), rtol=1e-6, atol=1e-12, msg=f"seed {seed}"
        )


@pytest.mark.parametrize("domain", ["log", "scaling"])
def test_matches_pot_when_stopped_before_convergence(domain):
    cost, a, b = _problem(np.random.default_rng(1), 25, 14)
    expected = _pot(a, b, cost, 0.01, 7, 0.0)
    plan = sinkhorn(*_t(cost, a, b), 0.01, max_iter=7, tol=0.0, domain=domain)
    torch.testing.assert_close(plan, torch.from_numpy(expected), rtol=1e-9, atol=1e-15)


def test_batched_equals_per_problem():
    cost, a, b = _t(*_problem(np.random.default_rng(2), 17, 11, batch=(6,)))
    batched = sinkhorn(cost, a, b, 0.05, max_iter=200, tol=0.0)
    for i in range(6):
        single = sinkhorn(cost[i], a[i], b[i], 0.05, max_iter=200, tol=0.0)
        torch.testing.assert_close(batched[i], single, rtol=1e-12, atol=1e-15)
    # with early stopping the batch runs until its worst problem converged
    converged = sinkhorn(cost, a, b, 0.05, max_iter=5000, tol=1e-10)
    for i in range(6):
        single = sinkhorn(cost[i], a[i], b[i], 0.05, max_iter=5000, tol=1e-10)
        torch.testing.assert_close(converged[i], single, rtol=1e-7, atol=1e-12)


def test_marginals_match_a_and_b():
    cost, a, b = _t(*_problem(np.random.default_rng(3), 30, 20, batch=(4,)))
    plan = sinkhorn(cost, a, b, 0.1, max_iter=1000, tol=1e-9)
    torch.testing.assert_close(plan.sum(-1), a, rtol=0, atol=1e-14)  # u is updated last
    assert torch.linalg.vector_norm(plan.sum(-2) - b, dim=-1).max() < 1e-9
    assert (plan >= 0).all()


def test_float32_close_to_float64():
    cost, a, b = _t(*_problem(np.random.default_rng(4), 40, 25, batch=(3,)))
    plan64 = sinkhorn(cost, a, b, 0.05, max_iter=300, tol=0.0)
    plan32 = sinkhorn(cost.float(), a.float(), b.float(), 0.05, max_iter=300, tol=0.0)
    assert plan32.dtype == torch.float32
    torch.testing.assert_close(plan32.double(), plan64, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("epsilon", [1e-3, 1e-4])
def test_tiny_epsilon_is_finite(dtype, epsilon):
    cost, a, b = _t(*_problem(np.random.default_rng(5), 50, 30, batch=(2,)))
    cost, a, b = cost.to(dtype), a.to(dtype), b.to(dtype)
    plan = sinkhorn(cost, a, b, epsilon, max_iter=200, tol=1e-6)
    assert torch.isfinite(plan).all()
    torch.testing.assert_close(plan.sum(-1), a, rtol=1e-4, atol=1e-6)
    if dtype == torch.float64:
        expected = _pot(a[0].numpy(), b[0].numpy(), cost[0].numpy(), epsilon, 200, 1e-6)
        torch.testing.assert_close(plan[0], torch.from_numpy(expected), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("domain", ["log", "scaling"])
def test_zero_masses_give_zero_rows_and_columns(domain):
    cost, a, b = _problem(np.random.default_rng(6), 12, 9)
    a[[0, 5]] = 0.0
    b[[3]] = 0.0
    a, b = a / a.sum(), b / b.sum()
    cost_t, a_t, b_t = (x.requires_grad_(True) for x in _t(cost, a, b))
    plan = sinkhorn(cost_t, a_t, b_t, 0.05, max_iter=500, tol=1e-9, domain=domain)
    assert torch.isfinite(plan).all()
    assert (plan[[0, 5]] == 0).all() and (plan[:, 3] == 0).all()
    torch.testing.assert_close(plan.detach(), torch.from_numpy(_pot(a, b, cost, 0.05, 500, 1e-9)))
    (plan * cost_t).sum().backward()
    for x in (cost_t, a_t, b_t):
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("domain", ["log", "scaling"])
def test_gradient_matches_finite_differences(domain):
    cost, a, b = _t(*_problem(np.random.default_rng(7), 4, 3, batch=(2,)))
    inputs = tuple(x.clone().requires_grad_(True) for x in (cost, a, b))
    assert torch.autograd.gradcheck(
        lambda c, a, b: sinkhorn(c, a, b, 0.2, max_iter=30, tol=0.0, domain=domain), inputs
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaling_and_log_domains_agree_on_the_aggregation_shape(dtype):
    # (B, K, M) = (8, 512, 64) with the OT module's [0, 1] cost; ε = 0.05: spread 20
    rng = np.random.default_rng(10)
    cost, a, b = _t(*_problem(rng, 512, 64, batch=(8,)))
    cost, a, b = cost.to(dtype), a.to(dtype), b.to(dtype)
    log = sinkhorn(cost, a, b, 0.05, max_iter=100, tol=0.0, domain="log")
    scaling = sinkhorn(cost, a, b, 0.05, max_iter=100, tol=0.0, domain="scaling")
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    assert (scaling - log).abs().max() <= rtol * log.abs().max()


def test_auto_domain_follows_the_spread(monkeypatch):
    import scenellm.model.sinkhorn as module

    chosen = []
    for name in ("_log_domain", "_scaling_domain"):
        original = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *args, _n=name, _f=original: chosen.append(_n) or _f(*args)
        )
    cost, a, b = _t(*_problem(np.random.default_rng(11), 20, 10))  # cost spread < 1
    for dtype, limit in module.SCALING_MAX_SPREAD.items():
        spread = float(cost.max() - cost.min())
        sinkhorn(cost.to(dtype), a.to(dtype), b.to(dtype), spread / limit * 1.01)
        sinkhorn(cost.to(dtype), a.to(dtype), b.to(dtype), spread / limit * 0.99)
    assert chosen == ["_scaling_domain", "_log_domain"] * 2


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c, a, b: (c[0, 0], a[0], b[0]), "shape"),
        (lambda c, a, b: (c, a[:, :-1], b), "shapes"),
        (lambda c, a, b: (c, a, b[0]), "shapes"),
        (lambda c, a, b: (c.long(), a, b), "float32 or float64"),
        (lambda c, a, b: (c, -a, b), "negative"),
        (lambda c, a, b: (c, a, 2 * b), "total masses differ"),
        (lambda c, a, b: (c, 0 * a, 0 * b), "zero total mass"),
        (lambda c, a, b: (c.clone().fill_(float("nan")), a, b), "non-finite"),
        (lambda c, a, b: (_with(c, float("nan")), a, b), "cost has non-finite"),
        (lambda c, a, b: (_with(c, float("inf")), a, b), "cost has non-finite"),
        (lambda c, a, b: (_with(c, -float("inf")), a, b), "cost has non-finite"),
        (lambda c, a, b: (c.clone().fill_(float("inf")), a, b), "cost has non-finite"),
        (lambda c, a, b: (c, _with(a, float("nan")), b), "a or b has non-finite"),
        (lambda c, a, b: (c[:, :0], a[:, :0], b), "non-empty"),
        (lambda c, a, b: (c[:0], a[:0], b[:0]), "non-empty"),
    ],
)
def test_bad_inputs_raise(change, match):
    cost, a, b = _t(*_problem(np.random.default_rng(8), 5, 4, batch=(2,)))
    with pytest.raises(ValueError, match=match):
        sinkhorn(*change(cost, a, b), 0.1)


def _with(x: torch.Tensor, value: float) -> torch.Tensor:
    """A copy of a batched tensor with one entry of its second problem set to ``value``."""
    x = x.clone()
    x[(1,) + (1,) * (x.dim() - 1)] = value
    return x


@pytest.mark.parametrize(
    "kwargs",
    [{"epsilon": 0.0}, {"max_iter": 0}, {"check_every": 0}, {"tol": -1.0}, {"domain": "exp"}],
)
def test_bad_parameters_raise(kwargs):
    cost, a, b = _t(*_problem(np.random.default_rng(9), 5, 4))
    with pytest.raises(ValueError):
        sinkhorn(cost, a, b, **{"epsilon": 0.1, **kwargs})


@pytest.mark.parametrize("domain", ["log", "scaling"])
def test_status_flags_each_unconverged_problem(domain):
    """Problem 0 is easy (large ε), problem 1 hard (small ε through a steep cost): after
    10 iterations only problem 0 meets the tolerance; POT's column error agrees."""
    rng = np.random.default_rng(3)
    cost, a, b = _problem(rng, 12, 6, (2,))
    cost[0] *= 0.01
    cost_t, a_t, b_t = _t(cost, a, b)
    plan, converged = sinkhorn_status(cost_t, a_t, b_t, 0.02, max_iter=10, tol=1e-6,
                                      domain=domain)
    assert converged.tolist() == [True, False]
    for i in range(2):
        ref = _pot(a[i], b[i], cost[i], 0.02, 10, 0.0)
        error = np.linalg.norm(ref.sum(0) - b[i])
        assert (error < 1e-6) == bool(converged[i])
    _, all_iterations = sinkhorn_status(cost_t, a_t, b_t, 0.02, max_iter=10, tol=0.0)
    assert all_iterations.all()  # tol 0 asks for every iteration: nothing to flag


def test_fp32_under_bf16_autocast_equals_plain_float32():
    rng = np.random.default_rng(4)
    cost, a, b = _t(*(x.astype(np.float32) for x in _problem(rng, 64, 16, (3,))))
    expected, _ = sinkhorn_status(cost, a, b, 0.05, max_iter=200, tol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plan, converged = sinkhorn_fp32(cost, a, b, 0.05, max_iter=200, tol=1e-6)
    assert plan.dtype == torch.float32 and converged.all()
    torch.testing.assert_close(plan, expected, rtol=0, atol=0)


@pytest.fixture
def torch_threads():
    """Set torch's intra-op thread count inside a test; the previous count is restored."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("tol", "check_every"), [(0.0, 10), (1e-4, 3), (1e-7, 4), (1e-300, 5)])
def test_scaling_without_gradients_equals_the_autograd_loop(
    monkeypatch, torch_threads, dtype, tol, check_every, threads
):
    """The graph-free loop (numpy's BLAS on CPU, ``out=`` buffers, the batch in cache-sized
    chunks, checks fused into the chunks over the whole batch, on 2 threads the batch split
    between them) runs the autograd loop's iterations and stops at the same check: the plans
    are equal up to rounding and the statuses are equal. On 1 thread, 16 KiB chunks split
    the batch of 7 different problems of 40 × 30 into chunks of 3 (float32, the last one
    ragged) or 1 (float64); on 2, the threads take problems 0-3 and 4-6, in calls of 2
    (float32) or 1 (float64). A chunk or thread that read or wrote another's rows, or a
    check that missed a thread's part, would miss by far more than the tolerance."""
    import scenellm.model.sinkhorn as module

    monkeypatch.setattr(module, "CHUNK_BYTES", dict.fromkeys(module.CHUNK_BYTES, 16 * 1024))
    monkeypatch.setattr(module, "THREAD_MIN_BYTES", 4 * 1024)
    monkeypatch.setattr(module, "THREAD_CHUNK_BYTES", 16 * 1024)
    torch_threads(threads)
    cost, a, b = (x.to(dtype) for x in _t(*_problem(np.random.default_rng(11), 40, 30, (7,))))
    kwargs = dict(max_iter=50, tol=tol, check_every=check_every, domain="scaling")
    with torch.no_grad():
        plan, converged = sinkhorn_status(cost, a, b, 0.05, **kwargs)
    graph_plan, graph_converged = sinkhorn_status(cost.requires_grad_(), a, b, 0.05, **kwargs)
    assert graph_plan.requires_grad and not plan.requires_grad
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    assert (plan - graph_plan.detach()).abs().max() <= rtol * graph_plan.abs().max()
    assert torch.equal(converged, graph_converged)


def test_scaling_without_gradients_runs_numpys_blas_on_one_thread(monkeypatch):
    """The graph-free loop's gemvs are too small for OpenBLAS's threads (slower on 2 than on
    1): inside the loop BLAS has one thread, and the caller's count is back after it."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen = []
    matmul = np.matmul

    def spy(*args, **kwargs):
        if not seen:
            seen.append(blas_threads())
        return matmul(*args, **kwargs)

    monkeypatch.setattr(np, "matmul", spy)
    cost, a, b = _t(*_problem(np.random.default_rng(3), 40, 30, (4,)))
    with threadpool_limits(2, user_api="blas"), torch.no_grad():
        assert blas_threads() == {2}
        sinkhorn(cost, a, b, 0.05, max_iter=20, domain="scaling")
        assert blas_threads() == {2}
    assert seen == [{1}]


@pytest.mark.parametrize(
    ("threads", "batch", "expected"),
    [(2, 64, 2), (1, 64, 1), (2, 8, 1), (2, 16, 2), (3, 64, 3), (8, 3, 1)],
)
def test_scaling_without_gradients_splits_the_batch_over_torchs_threads(
    monkeypatch, torch_threads, threads, batch, expected
):
    """With torch on more than one thread the graph-free loop runs its products on that many
    threads at once when each gets at least ``THREAD_MIN_BYTES`` (1 MiB) of K, else on the
    caller's own: float32 problems of 512 × 64 hold 128 KiB of K, so 8 of them stay on one
    thread and 16 use two. Each thread's first product waits at a barrier for the others:
    parts run one after another would break it."""
    import threading

    torch_threads(threads)
    barrier = threading.Barrier(expected, timeout=20)
    seen = set()
    matmul = np.matmul

    def spy(*args, **kwargs):
        if threading.get_ident() not in seen:
            seen.add(threading.get_ident())
            barrier.wait()
        return matmul(*args, **kwargs)

    monkeypatch.setattr(np, "matmul", spy)
    rng = np.random.default_rng(5)
    cost, a, b = (x.float() for x in _t(*_problem(rng, 512, 64, (batch,))))
    with torch.no_grad():
        plan, _ = sinkhorn_status(cost, a, b, 0.05, max_iter=20, tol=0.0, domain="scaling")
    assert len(seen) == expected
    assert (threading.get_ident() in seen) == (expected == 1)
    assert torch.get_num_threads() == threads  # the caller's count is back
    ref = _pot(a[0].double().numpy(), b[0].double().numpy(), cost[0].double().numpy(), 0.05, 20, 0.0)
    np.testing.assert_allclose(plan[0].numpy(), ref, atol=1e-6)


def _threaded_solve(cost, a, b, queue) -> None:
    with torch.no_grad():
        plan = sinkhorn(cost, a, b, 0.05, max_iter=20, domain="scaling")
    # a digest, not torch's sum: torch's OpenMP threads are not fork-safe
    queue.put(hashlib.sha256(plan.numpy().tobytes()).hexdigest())


def test_a_forked_child_runs_the_threaded_loop_on_its_own_threads(torch_threads):
    """The parent's pool of loop threads is not the child's: a child forked after the parent
    ran the threaded loop runs it too (with the parent's pool it would wait forever). The
    inputs are built before the fork and the child runs no parallel torch op of its own:
    torch's OpenMP threads are not fork-safe."""
    import multiprocessing

    torch_threads(2)
    cost, a, b = (x.float() for x in _t(*_problem(np.random.default_rng(6), 512, 64, (16,))))
    fork = multiprocessing.get_context("fork")
    queue = fork.SimpleQueue()
    _threaded_solve(cost, a, b, queue)  # the parent's pool now exists, with its two threads
    expected = queue.get()
    child = fork.Process(target=_threaded_solve, args=(cost, a, b, queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert queue.get() == expected  # the same plan, to the bit


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaling_without_gradients_gives_the_same_bits_on_1_and_2_threads(
    monkeypatch, torch_threads, dtype
):
    """Splitting the batch over threads changes who computes each problem, not how: the same
    gemv per problem and the same checks, so the plans and statuses are bit-identical."""
    import scenellm.model.sinkhorn as module

    monkeypatch.setattr(module, "THREAD_MIN_BYTES", 4 * 1024)
    monkeypatch.setattr(module, "THREAD_CHUNK_BYTES", 16 * 1024)
    cost, a, b = (x.to(dtype) for x in _t(*_problem(np.random.default_rng(12), 40, 30, (9,))))
    out = []
    for threads in (1, 2):
        torch_threads(threads)
        with torch.no_grad():
            out.append(sinkhorn_status(cost, a, b, 0.05, max_iter=60, tol=1e-7, domain="scaling"))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
