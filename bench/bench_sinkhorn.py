"""Benchmark: batched ``sinkhorn`` against POT's fastest solver for the same problem.

Problem: a batch of 64 entropic OT problems of 512 × 64 (squared distances between random
points in R^8, normalised by their max; random positive source masses, uniform targets),
ε = 0.05, float32 and float64, seeded, on 1 and 2 threads (``--threads``).

Ours runs with ``domain="auto"``, which takes the scaling domain here (spread 1/ε = 20, see
``scenellm.model.sinkhorn``). The POT candidates are every solver POT has for this problem:

- ``ot.sinkhorn`` looped over the batch, ``method="sinkhorn"`` (scaling domain, numpy BLAS)
  and ``method="sinkhorn_log"``;
- ``ot.solve_batch`` with the numpy and the torch backend, ``method="sinkhorn"`` and
  ``method="log_sinkhorn"``.

Same work: every solver runs exactly ``--iters`` iterations (tol = 0, so none stops early).
POT computes its marginal error every 10 iterations regardless; ours skips the check at
tol = 0, so ours is timed with ``check_every=10`` and an unreachable tol (POT's work), and
``ours_no_checks`` is shown beside it. The thread count applies to torch
(``torch.set_num_threads``) and to numpy's BLAS (``threadpoolctl``); ours reads torch's and
splits its batch over that many Python threads (its BLAS stays on one per thread).

Equal plans: each plan's max |ΔP| / max P against ours is printed. The POT loop updates v
first, as ours does, so its iterates are ours up to rounding and the difference is asserted
within ``PLAN_RTOL``. ``solve_batch`` updates u first: its plans equal ours only once both
have converged (they have after 100 iterations at ε = 0.05); the headline counts a solver
only when its plan is within ``PLAN_RTOL`` of ours.

Timings are the best of ``--repeats`` runs after a warm-up run (the one whose plan is
checked); POT's log-domain solvers, 10-70x slower than the scaling ones and never the
fastest, get ``--log-repeats``. Headline per (threads, dtype): ours against the fastest POT
solver, target ≥ 2x.

Run: python bench/bench_sinkhorn.py [--threads 1 2] [--json results.json]
"""

from __future__ import annotations

import argparse
import platform
import warnings
from pathlib import Path

import numpy as np
import ot
import torch
from threadpoolctl import threadpool_limits

from common import best_of, write_json
from scenellm.model.sinkhorn import sinkhorn

PLAN_RTOL = {"float32": 1e-4, "float64": 1e-9}  # max |ΔP| / max P
TARGET = 2.0  # ours × faster than POT's fastest solver
OURS = ("ours", "ours_no_checks")
SAME_ORDER = ("pot_loop_sinkhorn", "pot_loop_sinkhorn_log")  # v first, like ours
LOG_DOMAIN = ("pot_loop_sinkhorn_log", "pot_batch_numpy_log_sinkhorn",
              "pot_batch_torch_log_sinkhorn")  # fmt: skip


def make_problem(batch: int, n: int, m: int, dtype: np.dtype, seed: int):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((batch, n, 8)), rng.standard_normal((batch, m, 8))
    cost = ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)  # (B, n, m)
    cost /= cost.max(axis=(1, 2), keepdims=True)
    a = rng.random((batch, n)) + 0.1
    a /= a.sum(-1, keepdims=True)
    b = np.full((batch, m), 1.0 / m)
    return cost.astype(dtype), a.astype(dtype), b.astype(dtype)


def ours(cost, a, b, eps: float, iters: int, check: bool = True):
    # tol = 1e-300 is never met, so the check runs every 10 iterations without stopping
    tol = 1e-300 if check else 0.0
    return sinkhorn(cost, a, b, eps, max_iter=iters, tol=tol, check_every=10)


def pot_loop(cost, a, b, eps: float, iters: int, method: str) -> np.ndarray:
    return np.stack(
        [
            ot.sinkhorn(a[i], b[i], cost[i], eps, method=method, numItermax=iters, stopThr=0.0)
            for i in range(len(cost))
        ]
    )


def pot_solve_batch(cost, a, b, eps: float, iters: int, method: str):
    result = ot.solve_batch(cost, reg=eps, a=a, b=b, max_iter=iters, tol=0.0,
                            method=method, reg_type="entropy", grad="detach")  # fmt: skip
    return result.plan


def bench_case(dtype_name: str, args: argparse.Namespace) -> dict:
    """Time every solver on one dtype (at the current thread count); compare plans to ours."""
    numpy_problem = make_problem(args.batch, args.n, args.m, np.dtype(dtype_name), args.seed)
    torch_problem = tuple(torch.from_numpy(x) for x in numpy_problem)
    hyper = (args.epsilon, args.iters)
    calls = {
        "ours": lambda: ours(*torch_problem, *hyper),
        "ours_no_checks": lambda: ours(*torch_problem, *hyper, check=False),
    }
    for method in ("sinkhorn", "sinkhorn_log"):
        calls[f"pot_loop_{method}"] = lambda m=method: pot_loop(*numpy_problem, *hyper, m)
    for method in ("sinkhorn", "log_sinkhorn"):
        for backend, problem in (("numpy", numpy_problem), ("torch", torch_problem)):
            calls[f"pot_batch_{backend}_{method}"] = lambda p=problem, m=method: (
                pot_solve_batch(*p, *hyper, m)
            )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT: "Sinkhorn did not converge" at tol = 0
        plans = {name: np.asarray(call()) for name, call in calls.items()}  # also the warm-up
        seconds = {
            name: best_of(call, args.log_repeats if name in LOG_DOMAIN else args.repeats)[0]
            for name, call in calls.items()
        }
    reference = plans["ours"]
    scale = np.abs(reference).max()
    diff = {k: float(np.abs(p - reference).max() / scale) for k, p in plans.items()}
    for name in SAME_ORDER:
        assert diff[name] <= PLAN_RTOL[dtype_name], (dtype_name, name, diff)
    # the unreachable tol must not have stopped the checked run early
    assert np.array_equal(plans["ours"], plans["ours_no_checks"]), dtype_name
    equal = [k for k in calls if k not in OURS and diff[k] <= PLAN_RTOL[dtype_name]]
    fastest = min(equal, key=seconds.__getitem__)
    column_error = np.linalg.norm(reference.sum(1) - numpy_problem[2], axis=-1).max()
    return {
        "seconds": seconds,
        "speedup_of_ours": {k: seconds[k] / seconds["ours"] for k in seconds if k != "ours"},
        "plan_rel_diff_vs_ours": diff,
        "pot_fastest": fastest,
        "speedup_vs_pot_fastest": seconds[fastest] / seconds["ours"],
        "ours_column_marginal_error": float(column_error),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the results to this path")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--log-repeats", type=int, default=1,
                        help="repeats for POT's log-domain solvers (slow, never the fastest)")  # fmt: skip
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch and numpy BLAS thread counts, one run each")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            results[str(threads)] = {d: bench_case(d, args) for d in ("float32", "float64")}
    print(
        f"{args.batch} problems of {args.n}x{args.m}, eps={args.epsilon}, {args.iters} "
        f"iterations (tol=0), best of {args.repeats} ({args.log_repeats} for POT's log domain)"
    )
    header = f"{'threads':>7} {'dtype':8} {'solver':30} {'seconds':>9} {'ours x':>7} {'plan diff':>10}"
    print(header)
    for threads, by_dtype in results.items():
        for dtype_name, res in by_dtype.items():
            for solver, sec in res["seconds"].items():
                ratio = res["speedup_of_ours"].get(solver, 1.0)
                diff = res["plan_rel_diff_vs_ours"][solver]
                print(f"{threads:>7} {dtype_name:8} {solver:30} {sec:9.3f} {ratio:7.2f} {diff:10.1e}")
    print(f"headline: ours vs POT's fastest solver at equal plans, target >= {TARGET:g}x")
    for threads, by_dtype in results.items():
        for dtype_name, res in by_dtype.items():
            ratio = res["speedup_vs_pot_fastest"]
            verdict = "met" if ratio >= TARGET else "MISSED"
            print(f"  {threads} thread(s), {dtype_name}: {ratio:.2f}x {res['pot_fastest']} "
                  f"({res['seconds'][res['pot_fastest']]:.3f} s vs {res['seconds']['ours']:.3f} s) "
                  f"-> {verdict}")  # fmt: skip
    write_json(args.json, {
        "config": vars(args),
        "versions": {
            "torch": torch.__version__,
            "pot": ot.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "results": results,
    })


if __name__ == "__main__":
    main()
