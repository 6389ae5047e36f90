"""Learning curve: SceneLLM beside its references as the world grows.

On the default data (150 videos) the windowed trees lead the model. Is that the model's
parts or its appetite for data? For each size in ``--videos`` this script

1. writes a world of that many videos with ``scenellm data synth`` into ``WORK/worldN``
   (the seed, frames per video and frame size of ``params/data.yaml``; reused when a
   previous call finished it with the same arguments, which ``WORK/worldN.json`` records);
2. runs ``scenellm ablate --grid GRID --seeds S --set data.root=WORK/worldN`` in its own
   project home ``WORK/homeN`` (the shipped params otherwise; finished cells are reused by
   fingerprint, so a re-run with more sizes or seeds computes only what is new);
3. reads the data's oracle ceilings (``scenellm data inspect --json``).

It writes one JSON (every size's ablation table and ceilings), a markdown table (per size:
the full model's R@20 and the paired differences of the windowed trees, the per-frame
model and the predictor alone) and one plot: test PREDCLS
and SGCLS R@20 (with constraint) against the number of training videos, for the full
model (its 95 % video-bootstrap interval as a band), each variant of the grid, the three
references and, in PREDCLS, the two oracle ceilings. The paired intervals of each row's
difference from the full model are in the JSON and in each home's
``reports/ablate-GRID/table.md``.

    python bench/learning_curve.py --work /tmp/curve --videos 150 300 600 --seeds 1

About 75 minutes on 2 cores for 150 300 600 1200 with one seed; an analysis, not a benchmark (``make bench``
does not run it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from common import REPO, SCENELLM, write_json

SERIES = (  # row of the ablation table → (label, colour, line style)
    ("full", "SceneLLM (full)", "C0", "-"),
    ("per-frame", "SceneLLM per frame", "C0", ":"),
    ("predictor-alone", "predictor alone", "C1", "--"),
    ("ref: trees t-3..t+2", "trees, t-3..t+2", "C2", "-"),
    ("ref: trees per frame", "trees, per frame", "C2", ":"),
    ("ref: frequency", "frequency", "C7", "-"),
)


def synth(work: Path, videos: int, data: dict) -> Path:
    """The world of ``videos`` videos under ``work``, written once."""
    root, record = work / f"world{videos}", work / f"world{videos}.json"
    args = [str(SCENELLM), "data", "synth", "--out", str(root), "--videos", str(videos),
            "--seed", str(data["synth_seed"]), "--frames", str(data["synth_frames"]),
            "--size", f"{data['synth_width']}x{data['synth_height']}"]
    if record.is_file() and json.loads(record.read_text())["args"] == args[1:]:
        return root
    subprocess.run([*args, "--force"], check=True)
    record.write_text(json.dumps({"args": args[1:]}))  # after the world is complete
    return root


def ablate(work: Path, videos: int, root: Path, grid: str, seeds: int,
           overrides: list[str]) -> dict:
    """The grid's table on that world (cells computed or reused in its own home)."""
    home = work / f"home{videos}"
    env = {**os.environ, "SCENELLM_HOME": str(home)}
    sets = [arg for o in [f"data.root={root}", *overrides] for arg in ("--set", o)]
    subprocess.run([str(SCENELLM), "ablate", "--grid", grid, "--seeds", str(seeds), *sets],
                   check=True, env=env, cwd=REPO)
    return json.loads((home / "reports" / f"ablate-{grid}" / "table.json").read_text())


def ceilings(root: Path) -> dict:
    out = subprocess.run([str(SCENELLM), "data", "inspect", str(root), "--json"],
                         check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    return {split: {**report[split]["ceilings"], "videos": report[split]["videos"]}
            for split in ("train", "test")}


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4), sharey=True)
    x = [p["ceilings"]["train"]["videos"] for p in points]
    for ax, mode in zip(axes, ("predcls", "sgcls"), strict=True):
        for row, label, colour, style in SERIES:
            cells = [next((r[f"{mode}_R@20"] for r in p["table"]["rows"] if r["row"] == row),
                          None) for p in points]
            if any(c is None for c in cells):
                continue
            ax.plot(x, [100 * c["mean"] for c in cells], style, color=colour, marker="o",
                    label=label)
            if row == "full":
                ax.fill_between(x, [100 * c["low"] for c in cells],
                                [100 * c["high"] for c in cells], color=colour, alpha=0.15)
        if mode == "predcls":
            for key, label in (("per_frame", "oracle, one frame"),
                               ("history", "oracle, with the past")):
                ax.plot(x, [p["ceilings"]["test"][key]["R@20"] for p in points], "-.",
                        color="k", alpha=0.5 if key == "per_frame" else 0.8, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(v) for v in x])
        ax.set_xlabel("training videos (log scale)")
        ax.set_title(f"{mode.upper()} R@20, with constraint (test)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("R@20 (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _diff(row: dict | None) -> str:
    if row is None:
        return "—"
    d, lo, hi = (100 * row[k] for k in ("diff", "diff_low", "diff_high"))
    mark = "" if row["significant"] else " ~"  # the ablation table's own verdict
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]{mark}".replace("-", "−")


def curve_markdown(points: list[dict]) -> str:
    """One line per size: the full model's R@20 with its interval, and the paired difference
    of the windowed trees, the per-frame model and the predictor alone from it."""
    head = ("| train / test videos | oracle, one frame | mode | full R@20 | trees t-3..t+2 "
            "| per-frame | predictor alone |\n|---|---|---|---|---|---|---|\n")
    lines = []
    for p in points:
        rows = {r["row"]: r for r in p["table"]["rows"]}
        c = p["ceilings"]
        for mode in ("predcls", "sgcls"):
            full = rows["full"][f"{mode}_R@20"]
            cells = [f"{c['train']['videos']} / {c['test']['videos']}",
                     f"{c['test']['per_frame']['R@20']:.1f}" if mode == "predcls" else "",
                     mode.upper(),
                     f"{100 * full['mean']:.2f} [{100 * full['low']:.2f}, {100 * full['high']:.2f}]",
                     *(_diff(rows[r][f"{mode}_R@20"] if r in rows else None)
                       for r in ("ref: trees t-3..t+2", "per-frame", "predictor-alone"))]
            lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="folder for the worlds and project homes (kept for re-runs)")
    parser.add_argument("--videos", type=int, nargs="+", default=[150, 300, 600],
                        help="world sizes, videos before the split (default: 150 300 600)")
    parser.add_argument("--grid", default="context",
                        help="grid of params/ablate.yaml run at every size (default: context)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per variant")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="a params override for every cell, e.g. finetune.phase_c_epochs=8")
    parser.add_argument("--json", type=Path, default=None,
                        help="write the results here (default: WORK/learning_curve.json)")
    args = parser.parse_args()

    import yaml

    data = yaml.safe_load((REPO / "params" / "data.yaml").read_text())["data"]
    args.work.mkdir(parents=True, exist_ok=True)
    points = []
    for videos in sorted(args.videos):
        start = time.perf_counter()
        root = synth(args.work, videos, data)
        table = ablate(args.work, videos, root, args.grid, args.seeds, args.overrides)
        points.append({"videos": videos, "ceilings": ceilings(root), "table": table,
                       "seconds": round(time.perf_counter() - start, 1)})
        full = next(r for r in table["rows"] if r["row"] == "full")["predcls_R@20"]
        print(f"{videos} videos: full PREDCLS R@20 {100 * full['mean']:.2f} "
              f"[{100 * full['low']:.2f}, {100 * full['high']:.2f}]", flush=True)
    plot(points, args.work / "learning_curve.png")
    table = curve_markdown(points)
    (args.work / "learning_curve.md").write_text(table)
    print(table)
    write_json(args.json or args.work / "learning_curve.json",
               {"grid": args.grid, "seeds": args.seeds, "overrides": args.overrides,
                "points": points})
    print(f"plot: {args.work / 'learning_curve.png'}")


if __name__ == "__main__":
    main()
