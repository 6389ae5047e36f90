"""Verify before reuse: what checking every stage output costs on a no-op re-run.

On a seeded synthetic dataset (default: the shipped 100 videos × 16 frames at 160×120, tiny
model sizes) the whole pipeline runs once, untimed. Then, in the same process, best of
``--repeats`` no-op ``run_until("evaluate")`` calls, three ways, side by side:

- unchecked: reuse trusts the success record alone (the check replaced by a stub: what the
  platform did before outputs carried a manifest);
- fast path (default): every file's size, mtime, ctime and inode against the manifest;
- ``--verify``: every file's sha256 against the manifest.

It prints the seconds, the ratios to the unchecked re-run, and the bytes hashed.

    python bench/bench_verify.py --json bench/results/bench_verify.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import best_of, make_project, print_table, synth_data, write_json


def output_bytes(results) -> int:
    return sum(p.stat().st_size for r in results.values() for p in r.path.rglob("*")
               if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import scenellm.stages.base as base
    from scenellm.config.load import load_params
    from scenellm.stages.pipeline import run_until

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        data = synth_data(Path(tmp) / "data", args.videos, args.frames, (160, 120), seed=0)
        project = make_project(Path(tmp) / "project", data)
        params = load_params(project.params_dir)
        first = run_until("evaluate", params, project)

        def noop(verify: bool = False):
            results = run_until("evaluate", params, project, verify=verify)
            assert all(r.reused for r in results.values()), "a stage was recomputed"

        checked = base.intact
        base.intact = lambda final, full=False, refresh=True: None
        unchecked, _ = best_of(noop, args.repeats)
        base.intact = checked
        fast, _ = best_of(noop, args.repeats)
        full, _ = best_of(lambda: noop(verify=True), args.repeats)
        size = output_bytes(first)
        files = sum(1 for r in first.values() for p in r.path.rglob("*") if p.is_file())

    rows = [{"re-run": "unchecked (record only)", "seconds": unchecked, "ratio": 1.0},
            {"re-run": "fast path (stat)", "seconds": fast, "ratio": fast / unchecked},
            {"re-run": "--verify (sha256)", "seconds": full, "ratio": full / unchecked}]
    print_table(rows, ["re-run", "seconds", "ratio"],
                title=f"no-op re-run of 5 stages, {args.videos} videos, {files} files, "
                      f"{size / 1e6:.1f} MB of stage outputs (best of {args.repeats})")
    write_json(args.json, {"videos": args.videos, "frames": args.frames, "files": files,
                           "output_bytes": size, "rows": rows})


if __name__ == "__main__":
    main()
