"""Memory: peak RSS of each pipeline stage on the default-size data (N = 100 videos × 16
frames, seed 0) and on twice the videos, each stage alone in its own process.

For N and 2N videos a temporary project runs the stages in pipeline order, one child
process per stage (``python -c`` calling ``run_until(stage)``): the stages upstream are
already complete, so the child only re-checks and reuses them, then computes its own stage.
The child's peak RSS comes from ``wait4`` (``ru_maxrss`` of that child alone). A baseline
child that only imports what the stages import (torch, pandas, transformers, peft, the
model) shows the fixed part of every peak.

Params are the repository's defaults (model and codebook sizes, batch sizes) with fewer
epochs (``--detector-epochs``, ``--vqvae-epochs``, ``--finetune-epochs``): the stages stream
a batch at a time, so the epoch count changes time, not the peak. ``--tiny-params`` uses the
test suite's tiny sizes instead.

Target (issue 10): 2N videos → peak ≤ 1.2× the N-video peak for ``features`` and
``finetune``. ``--profile`` adds a cProfile (own time) of each measured stage at 2N.

    python bench/bench_memory.py --json bench/results/bench_memory.json   # ~15 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import (
    PYTHON,
    add_pipeline_args,
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

STAGES = ("prepare", "features", "vqvae", "finetune", "evaluate")
TARGETS = ("features", "finetune")
GROWTH_TARGET = 1.2
STAGE_CHILD = """
import cProfile, json, sys
from scenellm.config.load import load_params
from scenellm.project import Project
from scenellm.stages.pipeline import run_until
project = Project.discover()
params = load_params(project.params_dir)
profiler = cProfile.Profile() if sys.argv[2] else None
if profiler:
    profiler.enable()
result = run_until(sys.argv[1], params, project)[sys.argv[1]]
if profiler:
    profiler.disable()
    profiler.dump_stats(sys.argv[2])
assert not result.reused, "the stage was reused; its output existed already"
print(json.dumps({"seconds": result.seconds}))
"""
BASELINE_CHILD = """
import pandas, torch, transformers, peft, safetensors.torch
import scenellm.model.scenellm, scenellm.features.backbone, scenellm.model.scene_graph_data
"""


def default_sizes(args: argparse.Namespace) -> dict:
    """Overrides that undo the tiny sizes (back to params/*.yaml) and set the epochs."""
    extra = {} if args.tiny_params else shipped_sizes()
    for section, values in {
        "detector": {"epochs": args.detector_epochs},
        "vqvae": {"epochs": args.vqvae_epochs},
        "finetune": {
            "phase_b_epochs": args.finetune_epochs[0],
            "phase_c_epochs": args.finetune_epochs[1],
        },
    }.items():
        extra[section] = {**extra.get(section, {}), **values}
    return extra


def measure(tmp: Path, videos: int, args: argparse.Namespace) -> dict[str, dict]:
    data = synth_data(tmp / f"data{videos}", videos, args.frames, tuple(args.size), args.seed)
    root = tmp / f"project{videos}"
    make_project(root, data, default_sizes(args))
    env = child_env(tmp / f"home{videos}")
    out = {}
    for stage in STAGES:
        profiled = args.profile and stage in TARGETS and videos > args.videos
        prof = tmp / f"{stage}{videos}.prof" if profiled else ""
        child = run_child([PYTHON, "-c", STAGE_CHILD, stage, str(prof)], root, env)
        child.check(f"{stage} on {videos} videos")
        out[stage] = {**child.summary(), **json.loads(child.stdout.strip().splitlines()[-1])}
        if prof:
            out[stage]["profile_top_tottime"] = profile_top(prof, sort="tottime")
        print(
            f"  {videos} videos, {stage}: peak {child.maxrss_mb:.0f} MB, {child.wall_s:.1f} s",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100, help="N; 2N is measured too")
    add_pipeline_args(parser)
    parser.add_argument("--tiny-params", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    sizes = (args.videos, 2 * args.videos)
    with tempfile.TemporaryDirectory(prefix="scenellm-bench-memory-") as tmp:
        tmp = Path(tmp)
        baseline = python_child(BASELINE_CHILD, tmp, child_env()).check("baseline imports")
        runs = {n: measure(tmp, n, args) for n in sizes}

    rows = []
    for stage in STAGES:
        small, big = runs[sizes[0]][stage], runs[sizes[1]][stage]
        ratio = big["maxrss_mb"] / small["maxrss_mb"]
        rows.append(
            {
                "stage": stage,
                f"peak_{sizes[0]}_mb": small["maxrss_mb"],
                f"peak_{sizes[1]}_mb": big["maxrss_mb"],
                "ratio": ratio,
                "growth_mb": big["maxrss_mb"] - small["maxrss_mb"],
                f"wall_{sizes[0]}_s": small["wall_s"],
                f"wall_{sizes[1]}_s": big["wall_s"],
                "target": f"<= {GROWTH_TARGET}" if stage in TARGETS else "",
                "met": (ratio <= GROWTH_TARGET) if stage in TARGETS else "",
            }
        )
    print(
        f"peak RSS per stage, {args.frames} frames/video at {args.size[0]}×{args.size[1]}, "
        f"{'tiny' if args.tiny_params else 'default'} sizes; a child that only imports torch, "
        f"pandas, transformers, peft and the model peaks at {baseline.maxrss_mb:.0f} MB"
    )
    print_table(rows, tuple(rows[0]))
    for n in sizes:
        for stage in TARGETS:
            top = runs[n][stage].get("profile_top_tottime")
            if top:
                print_table(
                    top,
                    ("function", "calls", "tottime_s", "cumtime_s"),
                    title=f"{stage} on {n} videos, top functions by own time",
                )
    write_json(
        args.json,
        {
            "benchmark": "memory",
            "videos": list(sizes),
            "frames_per_video": args.frames,
            "size": list(args.size),
            "seed": args.seed,
            "tiny_params": args.tiny_params,
            "overrides": default_sizes(args),
            "baseline_imports": baseline.summary(),
            "runs": {str(n): v for n, v in runs.items()},
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
