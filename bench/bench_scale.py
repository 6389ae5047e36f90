"""Scale: every pipeline stage on N videos and on ``--scale`` × N (peak RSS and seconds per
frame side by side), the evaluator on a full-AG-sized test split, and the projection of the
measured per-frame costs to full Action Genome.

Data: ``scenellm data synth`` writes both sizes (seed, frames per video and frame size
shared) into ``--cache``; a dataset is reused when its md5 (``data_version``) still equals
the one recorded when it was generated.

Stages: each size gets its own project (the shipped params, with the epochs set below) and
its own ``SCENELLM_HOME``. Every stage runs as ``scenellm stage NAME --json`` in its own
child process, upstream outputs already complete and reused, so the child computes that
stage alone; the launcher of ``bench/common.py`` reads the child's peak RSS with ``wait4``.
The sizes run interleaved stage by stage, and N is run twice, once before and once after
the large size (two independent homes), so both meet the same load on a shared machine:
N's seconds are the mean of its two runs, its peak the larger.

Seconds per frame are the stage's own seconds (from its summary: no interpreter start, no
imports, no reuse checks of upstream stages) over the frames of the splits it reads:

- ``prepare``, ``features``: every kept frame (features also trains the crop classifier
  on the train split for ``--detector-epochs``);
- ``detect`` (only with ``--sgdet``; skipped otherwise, as with the shipped params): every
  kept frame (it trains on train, detects on test);
- ``vqvae``, ``finetune``: the train split (validation videos are held out of it);
- ``evaluate``: every kept frame (it fits its references on the train split's pairs, then
  scores the model and the references on the test split).

``cpu_ratio`` is the same ratio in CPU seconds of the whole child process (imports
included), which a shared machine's load moves less than wall time.

Training stages run the same number of epochs at both sizes, so seconds per frame are per
epoch too: the VQ-VAE's early stopping cannot trigger (patience above the epochs) and
fine-tuning runs every epoch (``max_steps=0``, ``patience=0``; its step budget follows the
epochs).

Evaluator: the project's ``SceneGraphEvaluator`` on ``--eval-frames`` synthetic STTran-format
frames (``tests/evaluation/sttran_synthetic.py``: one person and 4-5 objects plus 0-2
spurious boxes per frame, 26 predicates), one 20-frame video per call, PREDCLS and SGCLS
under the with / semi / no constraints, one torch thread.

Targets (the scale-out issue): each stage's peak at ``--scale`` × N ≤ 1.2× its peak at N;
seconds per frame ≤ 1.3× N's.

    python bench/bench_scale.py --json bench/results/bench_scale.json          # 100 vs 1,000
    python bench/bench_scale.py --videos 20 --scale 2 --eval-frames 2000       # smoke check
    python bench/bench_scale.py --work /tmp/scale --eval-frames 0              # keep the stores,
    python bench/bench_scale.py --work /tmp/scale --eval-frames 0 --from vqvae  # re-measure one on
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (
    REPO,
    SCENELLM,
    add_pipeline_args,
    child_env,
    make_project,
    print_table,
    run_child,
    shipped_sizes,
    write_json,
)

sys.path.insert(0, str(REPO / "tests" / "evaluation"))

from sttran_synthetic import synthetic_video  # noqa: E402

STAGES = ("prepare", "features", "detect", "vqvae", "finetune", "evaluate")
RSS_TARGET, TIME_TARGET = 1.2, 1.3
SKIPPED = {"sgdet": 0.0}  # the detect stage's metrics when evaluate.modes has no sgdet
CONSTRAINTS = ("with", "semi", "no")
# STTran's filtered Action Genome splits (frames with a person and a visible object, videos
# with more than 2 such frames), as reported by STTran-based papers; AG has 234,253 frames.
FULL_AG = {"train_frames": 166_785, "test_frames": 54_371}


def stage_frames(stage: str, counts: dict) -> int:
    """Frames of the splits ``stage`` reads (module docstring)."""
    train, test = counts["train_frames"], counts["test_frames"]
    return {"vqvae": train, "finetune": train}.get(stage, train + test)


def dataset(cache: Path, videos: int, args: argparse.Namespace) -> tuple[Path, float]:
    """The synthetic dataset of ``videos`` videos, generated unless a copy with the recorded
    md5 is there; (root, seconds spent generating, 0 when reused)."""
    from scenellm.data.version import data_version

    w, h = args.size
    root = cache / f"synth-{videos}v-{args.frames}f-{w}x{h}-seed{args.seed}"
    record = root.with_name(root.name + ".md5")
    if root.is_dir() and record.is_file():
        if data_version(root) == record.read_text().strip():
            return root, 0.0
    start = time.perf_counter()
    subprocess.run(
        [
            SCENELLM,
            "data",
            "synth",
            "--out",
            root,
            "--videos",
            str(videos),
            "--seed",
            str(args.seed),
            "--frames",
            str(args.frames),
            "--size",
            f"{w}x{h}",
            "--force",
        ],
        check=True,
        env=child_env(),
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    record.write_text(data_version(root))
    return root, seconds


def overrides(args: argparse.Namespace) -> dict:
    """The shipped sizes with the bench's epochs (the same at every size)."""
    extra = shipped_sizes()
    for section, values in {
        "detector": {"epochs": args.detector_epochs},
        "detect": {"epochs": args.detect_epochs},
        "vqvae": {"epochs": args.vqvae_epochs, "patience": args.vqvae_epochs + 1},
        "finetune": {
            "phase_b_epochs": args.finetune_epochs[0],
            "phase_c_epochs": args.finetune_epochs[1],
            "max_steps": 0,
            "patience": 0,
        },
    }.items():
        extra[section] = {**extra.get(section, {}), **values}
    if args.sgdet:
        extra["evaluate"] = {"modes": ["predcls", "sgcls", "sgdet"]}
    return extra


def run_stage(stage: str, root: Path, home: Path, label: str) -> dict:
    child = run_child([SCENELLM, "stage", stage, "--json"], root, child_env(home))
    child.check(f"{stage} on {label}")
    summary = json.loads(child.stdout)
    if summary["reused"]:
        raise SystemExit(f"{stage} on {label} was reused; its output existed already")
    print(
        f"  {label:>12} {stage:>8}: peak {child.maxrss_mb:6.0f} MB, stage "
        f"{summary['seconds']:7.1f} s, process {child.wall_s:7.1f} s",
        flush=True,
    )
    return {**child.summary(), "stage_s": summary["seconds"], "metrics": summary["metrics"]}


def measure_stages(tmp: Path, data: dict[int, Path], args: argparse.Namespace, saved) -> dict:
    """{run label: {stage: usage}}; runs ``small-a``, ``large``, ``small-b`` per stage and
    hands the runs so far to ``saved`` after each."""
    small, large = sorted(data)
    labels = {"small-a": small, "large": large, "small-b": small}
    for label, videos in labels.items():
        if not (tmp / label / "params").is_dir():  # a kept --work folder has them already
            make_project(tmp / label, data[videos], overrides(args))
    runs: dict[str, dict] = {label: {} for label in labels}
    first = STAGES.index(args.start)
    for label in labels:  # the stages before --from: computed (or reused), not measured
        for stage in STAGES[:first]:
            child = run_child([SCENELLM, "stage", stage, "--json"], tmp / label,
                              child_env(tmp / f"home-{label}"))
            child.check(f"{stage} on {label}")
            runs[label][stage] = {"metrics": json.loads(child.stdout)["metrics"]}
    for stage in STAGES[first: STAGES.index(args.until) + 1]:
        for label in labels:
            shutil.rmtree(tmp / f"home-{label}" / "artifacts" / "stages" / stage,
                          ignore_errors=True)  # measured from scratch, also in a kept folder
            runs[label][stage] = run_stage(stage, tmp / label, tmp / f"home-{label}", label)
            saved(runs)
    return runs


def stage_rows(runs: dict) -> list[dict]:
    rows = []
    counts = {label: r["prepare"]["metrics"] for label, r in runs.items()}
    for stage in runs["large"]:
        a, b, big = runs["small-a"][stage], runs["small-b"][stage], runs["large"][stage]
        if "maxrss_mb" not in big:  # before --from: not measured
            continue
        if big["metrics"] == SKIPPED:
            rows.append({"stage": stage, "pass": "skipped (no sgdet)"})
            continue
        frames_small, frames_large = (stage_frames(stage, counts[k]) for k in ("small-a", "large"))
        rss_small = max(a["maxrss_mb"], b["maxrss_mb"])
        spf_small = (a["stage_s"] + b["stage_s"]) / 2 / frames_small
        spf_large = big["stage_s"] / frames_large
        rss_ratio, time_ratio = big["maxrss_mb"] / rss_small, spf_large / spf_small
        # CPU seconds of the whole process (imports too): steadier than wall time under load
        cpu_small = (a["cpu_s"] + b["cpu_s"]) / 2 / frames_small
        cpu_ratio = big["cpu_s"] / frames_large / cpu_small
        rows.append(
            {
                "stage": stage,
                "frames_1x": frames_small,
                "frames_Nx": frames_large,
                "rss_1x_mb": rss_small,
                "rss_Nx_mb": big["maxrss_mb"],
                "rss_ratio": rss_ratio,
                "ms_per_frame_1x": 1000 * spf_small,
                "ms_per_frame_Nx": 1000 * spf_large,
                "time_ratio": time_ratio,
                "cpu_ratio": cpu_ratio,
                "pass": rss_ratio <= RSS_TARGET and time_ratio <= TIME_TARGET,
            }
        )
    return rows


def evaluator_run(frames: int, seed: int) -> list[dict]:
    """Seconds of the evaluator on ``frames`` frames, per mode and constraint."""
    import torch

    from scenellm.data import vocab
    from scenellm.evaluation import SceneGraphEvaluator

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in bench_evaluator.py; the stages keep torch's default
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    videos = [
        synthetic_video(rng, min(20, frames - i), objects=(4, 5)) for i in range(0, frames, 20)
    ]
    print(f"  {frames} evaluator frames generated in {time.perf_counter() - start:.1f} s")
    classes = (
        vocab.STTRAN_OBJECT_CLASSES,
        vocab.PREDICATES,
        vocab.ATTENTION,
        vocab.SPATIAL,
        vocab.CONTACTING,
    )
    rows = []
    for mode in ("predcls", "sgcls"):
        for constraint in CONSTRAINTS:
            evaluator = SceneGraphEvaluator(mode, *classes, constraint=constraint)
            wall, cpu = time.perf_counter(), time.process_time()
            for gt, pred in videos:
                evaluator.evaluate_scene_graph(gt, pred)
            recall = evaluator.result_dict[mode + "_recall"]  # scores what is queued
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert len(recall[20]) == frames
            rows.append(
                {
                    "mode": mode,
                    "constraint": constraint,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "frames_per_s": frames / wall,
                    "R@20": float(np.mean(recall[20])),
                }
            )
            print(f"  evaluator {mode}/{constraint}: {wall:.2f} s", flush=True)
    torch.set_num_threads(threads)
    return rows


def projection(runs: dict, evaluator: list[dict], eval_frames: int, args) -> list[dict]:
    """Hours for full AG at the large size's per-frame costs with the shipped epochs (the
    VQ-VAE's maximum: early stopping may end it sooner). The features stage splits into
    the crop classifier's training (train frames × epochs) and extraction (every frame,
    once), from its metrics."""
    import yaml

    shipped = {}
    for path in (REPO / "params").glob("*.yaml"):
        shipped.update(yaml.safe_load(path.read_text()))
    finetune = shipped["finetune"]
    parts = {  # part: (stage, frames, epochs shipped / epochs measured)
        "prepare": ("prepare", FULL_AG["train_frames"] + FULL_AG["test_frames"], 1.0),
        "features: detector training": (
            "features",
            FULL_AG["train_frames"],
            shipped["detector"]["epochs"] / args.detector_epochs,
        ),
        "features: extraction": ("features", FULL_AG["train_frames"] + FULL_AG["test_frames"], 1.0),
        "vqvae": ("vqvae", FULL_AG["train_frames"], shipped["vqvae"]["epochs"] / args.vqvae_epochs),
        "finetune": (
            "finetune",
            FULL_AG["train_frames"],
            (finetune["phase_b_epochs"] + finetune["phase_c_epochs"]) / sum(args.finetune_epochs),
        ),
        "evaluate": ("evaluate", FULL_AG["train_frames"] + FULL_AG["test_frames"], 1.0),
    }
    large, counts = runs["large"], runs["large"]["prepare"]["metrics"]
    out = []
    for part, (stage, frames, epochs) in parts.items():
        if stage not in large or large[stage]["metrics"] == SKIPPED \
                or "stage_s" not in large[stage]:  # skipped, or before --from
            continue
        seconds, measured = large[stage]["stage_s"], stage_frames(stage, counts)
        if stage == "features":
            m = large[stage]["metrics"]
            extraction = m["frames_computed"] / m["frames_per_second"]
            training = "training" in part
            seconds = seconds - extraction if training else extraction
            measured = counts["train_frames"] if training else measured
        ms = 1000 * seconds / measured
        hours = ms / 1000 * frames * epochs / 3600
        out.append(
            {"part": part, "ms_per_frame": ms, "frames": frames, "epochs_x": epochs, "hours": hours}
        )
    if evaluator:
        ms = 1000 * sum(r["wall_s"] for r in evaluator) / eval_frames
        frames = FULL_AG["test_frames"]
        out.append(
            {
                "part": "evaluator alone (6 runs)",
                "ms_per_frame": ms,
                "frames": frames,
                "epochs_x": 1.0,
                "hours": ms / 1000 * frames / 3600,
            }
        )
    return out
    eval_s = sum(r["wall_s"] for r in evaluator) / eval_frames * FULL_AG["test_frames"]
    out.append(
        {
            "stage": "evaluator (6 runs)",
            "frames": FULL_AG["test_frames"],
            "epochs_factor": 1.0,
            "hours": eval_s / 3600,
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100, help="N, the 1x size")
    parser.add_argument("--scale", type=int, default=10, help="the large size is scale x N")
    add_pipeline_args(parser)
    parser.add_argument("--detect-epochs", type=int, default=1)
    parser.add_argument("--sgdet", action="store_true", help="add sgdet: runs the detect stage")
    parser.add_argument("--eval-frames", type=int, default=56_000, help="0: no evaluator run")
    parser.add_argument("--skip-stages", action="store_true", help="only the evaluator")
    parser.add_argument(
        "--until", choices=STAGES, default=STAGES[-1], help="measure the stages up to this one"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "scenellm-bench-scale",
        help="where the synthetic datasets are kept between runs",
    )
    parser.add_argument(
        "--from", dest="start", choices=STAGES, default=STAGES[0],
        help="measure from this stage on; the ones before are computed (or reused) unmeasured",
    )
    parser.add_argument(
        "--work", type=Path, default=None,
        help="keep the projects and stores here (default: a temp folder removed at the end); "
        "with --from, a kept folder re-measures one stage without recomputing upstream",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    sizes = (args.videos, args.scale * args.videos)
    report = {
        "benchmark": "scale",
        "videos": list(sizes),
        "frames_per_video": args.frames,
        "size": list(args.size),
        "seed": args.seed,
        "overrides": overrides(args),
        "full_ag": FULL_AG,
        "evaluator_frames": args.eval_frames,
        "complete": False,
    }
    # the evaluator first (minutes): a stage run cut short still leaves its numbers
    report["evaluator"] = evaluator_run(args.eval_frames, args.seed) if args.eval_frames else []
    if report["evaluator"]:
        print_table(
            report["evaluator"],
            tuple(report["evaluator"][0]),
            title=f"evaluator, {args.eval_frames} frames",
        )
        write_json(args.json, report)
    if not args.skip_stages:
        args.cache.mkdir(parents=True, exist_ok=True)
        data, report["generated_s"] = {}, {}
        for n in sizes:
            data[n], report["generated_s"][str(n)] = dataset(args.cache, n, args)
            print(f"data: {n} videos at {data[n]}", flush=True)
        with contextlib.ExitStack() as stack:
            work = args.work or Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="scenellm-bench-scale-")))
            work.mkdir(parents=True, exist_ok=True)
            report["runs"] = measure_stages(
                work, data, args, lambda runs: write_json(args.json, {**report, "runs": runs})
            )
        rows = report["rows"] = stage_rows(report["runs"])
        print(
            f"stages, {sizes[0]} (1x) against {sizes[1]} videos (Nx), {args.frames} frames "
            f"per video at {args.size[0]}x{args.size[1]}; targets: RSS <= {RSS_TARGET}x, "
            f"time per frame <= {TIME_TARGET}x"
        )
        print_table(rows, tuple(rows[0]))
        projected = report["projection"] = projection(
            report["runs"], report["evaluator"], args.eval_frames, args
        )
        print_table(projected, tuple(projected[0]), title="full AG at the Nx per-frame costs")
    report["complete"] = True
    write_json(args.json, report)


if __name__ == "__main__":
    main()
