"""Orchestration overhead: the Prefect ``train`` flow with MLflow tracking against the same
stages called directly, and the cost of a no-op re-run.

By default the pipeline is the one ``make run`` runs: the repository's own ``params/`` on
the default data (100 videos × 16 frames at 160×120, seed 0, regenerated into a temporary
folder; byte-identical to ``data/``), about a minute cold on 2 idle cores. ``--params tiny``
uses the tiny sizes of the end-to-end tests instead. Every variant is a child process with
a temporary project root (a copy of ``params/`` and ``flows/``) as its working directory
and its own fresh ``SCENELLM_HOME``:

- import:  ``python -c "import torch, prefect, mlflow"``;
- direct:  ``python -c`` calling ``run_until("evaluate", ...)``, cold (fresh home);
- flow:    ``scenellm run`` (Prefect ephemeral API started in the process, MLflow on a new
           SQLite file, model logged and registered), cold (fresh home);
- no-op:   ``scenellm run`` again in the flow's home, every stage reused (checked: no new
           stage output appears), alternating with the import child ``--repeats-noop``
           times (best of each, and the median of the paired ratios); the direct no-op
           beside it;
- warm stores: ``scenellm run`` after deleting only ``artifacts/`` (Prefect and MLflow
           databases kept): cold stages, as after a params change.

Targets (issue 10): flow − direct ≤ 10% of the direct cold pipeline; no-op re-run ≤ 3× the
import time. Stage seconds recorded in each ``_SUCCESS.json`` are subtracted from the wall
times too, so the fixed cost outside the stages is compared without the stages' own noise
(``overhead_outside_stages``). With ``--repeats`` > 1 the cold runs alternate direct/flow
and the best of each is kept. ``--profile`` adds a cProfile of one no-op re-run.

    python bench/bench_orchestration.py --json bench/results/bench_orchestration.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from common import (
    SCENELLM,
    Child,
    child_env,
    make_project,
    print_table,
    profile_top,
    python_child,
    run_child,
    shipped_sizes,
    synth_data,
    write_json,
)

DIRECT = """
from scenellm.config.load import load_params
from scenellm.project import Project
from scenellm.stages.pipeline import run_until
project = Project.discover()
run_until("evaluate", load_params(project.params_dir), project)
"""
IMPORTS = "import torch, prefect, mlflow"
OVERHEAD_TARGET, NOOP_TARGET = 0.10, 3.0
# the profile shows our own functions and the library calls that cost seconds in a no-op
PROFILED = (
    "src/scenellm/",
    "/flows/",
    "(_find_and_load)",
    "(get_client)",
    "server.py:1116(start)",
    "(initialize_run)",
    "(save_model)",
    "(warn_dependency_requirement_mismatches)",
    "tracking/client.py:237(__init__)",
    "(create_markdown_artifact)",
)


def stage_outputs(home: Path) -> dict[str, float]:
    """Completed stage outputs under ``home`` → the seconds their ``_SUCCESS.json`` records."""
    return {
        str(p.parent.relative_to(home)): json.loads(p.read_text())["seconds"]
        for p in sorted((home / "artifacts" / "stages").glob("*/*/_SUCCESS.json"))
    }


def row(name: str, child: Child, stage_s: float) -> dict:
    return {
        "run": name,
        "wall_s": child.wall_s,
        "cpu_s": child.cpu_s,
        "stages_s": stage_s,
        "outside_stages_s": child.wall_s - stage_s,
        "maxrss_mb": child.maxrss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params",
        choices=("shipped", "tiny"),
        default="shipped",
        help="shipped: params/*.yaml as in the repository (what `make run` runs); tiny: the "
        "end-to-end tests' sizes",
    )
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 120), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="cold runs of each variant")
    parser.add_argument("--repeats-noop", type=int, default=3, help="(import, no-op re-run) pairs")
    parser.add_argument("--profile", action="store_true", help="cProfile one no-op re-run")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scenellm-bench-orchestration-") as tmp:
        tmp = Path(tmp)
        data = synth_data(tmp / "data", args.videos, args.frames, tuple(args.size), args.seed)
        root = tmp / "project"
        make_project(root, data, shipped_sizes() if args.params == "shipped" else None)

        direct, flow = [], []
        for r in range(args.repeats):
            home = tmp / f"direct{r}"
            child = python_child(DIRECT, root, child_env(home)).check("direct pipeline")
            direct.append((child, sum(stage_outputs(home).values()), home))
            home = tmp / f"flow{r}"
            child = run_child([SCENELLM, "run"], root, child_env(home)).check("scenellm run")
            flow.append((child, sum(stage_outputs(home).values()), home))
        d_child, d_stages, d_home = min(direct, key=lambda t: t[0].wall_s)
        f_child, f_stages, f_home = min(flow, key=lambda t: t[0].wall_s)

        before = stage_outputs(f_home)
        imports, noops = [], []
        for _ in range(args.repeats_noop):  # paired, so a change of machine load hits both
            imports.append(python_child(IMPORTS, root, child_env()).check("import"))
            noops.append(
                run_child([SCENELLM, "run"], root, child_env(f_home)).check("no-op re-run")
            )
        if stage_outputs(f_home) != before:
            raise SystemExit("a re-run recomputed a stage (did code change meanwhile?)")
        noop = min(noops, key=lambda c: c.wall_s)
        import_s = min(c.wall_s for c in imports)
        paired = statistics.median(n.wall_s / i.wall_s for n, i in zip(noops, imports, strict=True))
        before = stage_outputs(d_home)
        direct_noop = python_child(DIRECT, root, child_env(d_home)).check("direct no-op")
        if stage_outputs(d_home) != before:
            raise SystemExit("the direct re-run recomputed a stage")

        top = []
        if args.profile:
            prof = tmp / "noop.prof"
            run_child(
                [SCENELLM.parent / "python", "-m", "cProfile", "-o", prof, SCENELLM, "run"],
                root,
                child_env(f_home),
            ).check("profiled no-op re-run")
            top = profile_top(prof, limit=25, include=PROFILED)

        shutil.rmtree(f_home / "artifacts")
        warm = run_child([SCENELLM, "run"], root, child_env(f_home)).check("warm-store run")
        w_stages = sum(stage_outputs(f_home).values())

    overhead = (f_child.wall_s - d_child.wall_s) / d_child.wall_s
    outside = ((f_child.wall_s - f_stages) - (d_child.wall_s - d_stages)) / d_child.wall_s
    warm_outside = ((warm.wall_s - w_stages) - (d_child.wall_s - d_stages)) / d_child.wall_s
    rows = [
        {
            "run": "import torch, prefect, mlflow",
            "wall_s": import_s,
            "cpu_s": min(c.cpu_s for c in imports),
            "maxrss_mb": imports[0].maxrss_mb,
        },
        row("direct run_until, cold", d_child, d_stages),
        row("scenellm run (flow), cold", f_child, f_stages),
        row("scenellm run, warm stores", warm, w_stages),
        row("direct run_until, no-op", direct_noop, 0.0),
        row("scenellm run, no-op", noop, 0.0),
    ]
    print(
        f"orchestration: {args.videos} videos × {args.frames} frames at "
        f"{args.size[0]}×{args.size[1]}, {args.params} params, best of {args.repeats} cold run(s)"
    )
    print_table(rows, ("run", "wall_s", "cpu_s", "stages_s", "outside_stages_s", "maxrss_mb"))
    verdict = [
        {
            "check": "flow overhead / direct cold (wall)",
            "value": overhead,
            "target": f"<= {OVERHEAD_TARGET:.2f}",
            "met": overhead <= OVERHEAD_TARGET,
        },
        {
            "check": "same, outside stage seconds only",
            "value": outside,
            "target": f"<= {OVERHEAD_TARGET:.2f}",
            "met": outside <= OVERHEAD_TARGET,
        },
        {
            "check": "warm-store flow, outside stages",
            "value": warm_outside,
            "target": f"<= {OVERHEAD_TARGET:.2f}",
            "met": warm_outside <= OVERHEAD_TARGET,
        },
        {
            "check": "no-op re-run / import time (best/best)",
            "value": noop.wall_s / import_s,
            "target": f"<= {NOOP_TARGET:.1f}",
            "met": noop.wall_s / import_s <= NOOP_TARGET,
        },
        {
            "check": "same, median of paired runs",
            "value": paired,
            "target": f"<= {NOOP_TARGET:.1f}",
            "met": paired <= NOOP_TARGET,
        },
    ]
    print_table(verdict, ("check", "value", "target", "met"))
    if top:
        print_table(
            top,
            ("function", "calls", "tottime_s", "cumtime_s"),
            title="no-op re-run under cProfile: ours and the costly library calls, by cumulative "
            "time (_find_and_load = all imports)",
        )
    write_json(
        args.json,
        {
            "benchmark": "orchestration",
            "params": args.params,
            "videos": args.videos,
            "frames_per_video": args.frames,
            "size": list(args.size),
            "seed": args.seed,
            "repeats": args.repeats,
            "import": [c.summary() for c in imports],
            "direct_cold": [{**c.summary(), "stages_s": s} for c, s, _ in direct],
            "flow_cold": [{**c.summary(), "stages_s": s} for c, s, _ in flow],
            "flow_warm_stores": {**warm.summary(), "stages_s": w_stages},
            "noop": [c.summary() for c in noops],
            "direct_noop": direct_noop.summary(),
            "rows": rows,
            "checks": verdict,
            "profile_noop_top_cumulative": top,
        },
    )


if __name__ == "__main__":
    main()
