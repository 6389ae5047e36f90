"""Feature caching: frames per second of the ``features`` stage, and a fully cached re-run
against a cold one.

On a seeded synthetic dataset (default 24 videos × 16 frames at 160×120) in a temporary
project (tiny params, detector epochs small), ``prepare`` runs first, untimed. Then:

- cold: ``run_until("features")`` computes the stage (detector training + RoI feature
  extraction for every video); frames/s comes from the stage's own metrics
  (``frames_per_second`` = frames / extraction seconds, detector training excluded), and
  the whole stage's frames/s is frames / stage seconds;
- cached: the same call again, best of ``--cached-repeats`` (fingerprint, the content
  manifest's stat check, manifest read), in the same process, and once in a fresh process (``python -c``
  calling ``run_until``, imports included).

The ratio cold / cached is the speed-up that caching buys. ``--profile`` adds a cProfile of
the cold run (top functions by own time). Wall and process CPU seconds are both reported:
on a shared machine CPU time is the steadier number. ``--threads N`` sets torch's intra-op
threads (on a busy machine OpenMP barriers make the small per-frame tensor ops slow).

    python bench/bench_features.py --json bench/results/bench_features.json
"""

from __future__ import annotations

import argparse
import cProfile
import os
import tempfile
import time
from pathlib import Path

from common import (
    best_of,
    child_env,
    make_project,
    print_table,
    profile_top,
    python_child,
    synth_data,
    write_json,
)

CACHED_CHILD = """
from scenellm.config.load import load_params
from scenellm.project import Project
from scenellm.stages.pipeline import run_until
project = Project.discover()
r = run_until("features", load_params(project.params_dir), project)["features"]
assert r.reused, "the features stage was recomputed"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 120), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16, help="detector.batch_size")
    parser.add_argument("--cached-repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice, one per core)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the cold run")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scenellm-bench-features-") as tmp:
        tmp = Path(tmp)
        os.environ["SCENELLM_HOME"] = str(tmp / "home")
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        from scenellm.config.load import load_params
        from scenellm.stages.pipeline import run_until

        data = synth_data(tmp / "data", args.videos, args.frames, tuple(args.size), args.seed)
        project = make_project(
            tmp / "project",
            data,
            {"detector": {"epochs": args.detector_epochs, "batch_size": args.batch_size}},
        )
        params = load_params(project.params_dir)
        prepare_s, _ = best_of(lambda: run_until("prepare", params, project), 1)

        profiler = cProfile.Profile() if args.profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        cold = run_until("features", params, project)["features"]
        if profiler:
            profiler.disable()
        cold_wall, cold_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert not cold.reused
        cached_wall, cached_all = best_of(
            lambda: run_until("features", params, project), args.cached_repeats
        )
        assert run_until("features", params, project)["features"].reused
        fresh = python_child(CACHED_CHILD, project.root, child_env(tmp / "home"))
        fresh.check("cached re-run in a fresh process")
        top = []
        if profiler:
            profiler.dump_stats(tmp / "cold.prof")
            top = profile_top(tmp / "cold.prof", sort="tottime")

    m = cold.metrics
    frames = m["frames_computed"]
    extract_s = frames / m["frames_per_second"]
    rows = [
        {
            "run": "cold",
            "wall_s": cold_wall,
            "cpu_s": cold_cpu,
            "frames/s": m["frames_per_second"],
            "stage_frames/s": frames / cold_wall,
            "vs_cached": cold_wall / cached_wall,
        },
        {
            "run": "cached (same process)",
            "wall_s": cached_wall,
            "cpu_s": "",
            "frames/s": "",
            "stage_frames/s": "",
            "vs_cached": 1.0,
        },
        {
            "run": "cached (fresh process)",
            "wall_s": fresh.wall_s,
            "cpu_s": fresh.cpu_s,
            "frames/s": "",
            "stage_frames/s": "",
            "vs_cached": fresh.wall_s / cached_wall,
        },
    ]
    print(
        f"features stage: {args.videos} videos × {args.frames} frames at "
        f"{args.size[0]}×{args.size[1]}, {frames} frames kept in {m['shards']} shards, "
        f"detector {args.detector_epochs} epoch(s), batch {args.batch_size}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    print(
        f"cold = detector training and setup {cold_wall - extract_s:.1f} s + extraction "
        f"{extract_s:.1f} s; prepare (untimed) took {prepare_s:.1f} s"
    )
    print_table(rows, ("run", "wall_s", "cpu_s", "frames/s", "stage_frames/s", "vs_cached"))
    print(
        f"cold / cached (same process) = {cold_wall / cached_wall:.0f}×, "
        f"cold / cached (fresh process) = {cold_wall / fresh.wall_s:.1f}×"
    )
    if top:
        print_table(
            top,
            ("function", "calls", "tottime_s", "cumtime_s"),
            title="cold run, top functions by own time",
        )
    write_json(
        args.json,
        {
            "benchmark": "features",
            "videos": args.videos,
            "frames_per_video": args.frames,
            "size": list(args.size),
            "seed": args.seed,
            "detector_epochs": args.detector_epochs,
            "detector_batch_size": args.batch_size,
            "torch_threads": torch.get_num_threads(),
            "frames_computed": frames,
            "shards": m["shards"],
            "prepare_s": prepare_s,
            "cold": {
                "wall_s": cold_wall,
                "cpu_s": cold_cpu,
                "stage_metrics": m,
                "extraction_s": extract_s,
                "detector_training_s": cold_wall - extract_s,
                "extraction_frames_per_s": m["frames_per_second"],
                "stage_frames_per_s": frames / cold_wall,
            },
            "cached_same_process": {"best_wall_s": cached_wall, "all_wall_s": cached_all},
            "cached_fresh_process": fresh.summary(),
            "cold_over_cached": cold_wall / cached_wall,
            "cold_over_cached_fresh_process": cold_wall / fresh.wall_s,
            "profile_top_tottime": top,
        },
    )


if __name__ == "__main__":
    main()
