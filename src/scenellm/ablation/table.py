"""The ablation table: each row's mean over seeds and its difference from the full model
with a 95 % paired video-bootstrap interval (:mod:`scenellm.evaluation.bootstrap`), for
PREDCLS and SGCLS R@10/20/50 with constraint, R@20 of near and far relations (SPADE's split at
a third of the image width, :mod:`scenellm.evaluation.distance`), mR@20 (a ratio over all
frames, so mean only: it does not split by video) and the seconds per fine-tuning epoch (the
stage's wall time over its epochs, mean over seeds).
A difference whose interval holds 0 is marked ``~``: inside the noise of this test set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scenellm.ablation.grid import FULL
from scenellm.evaluation.bootstrap import interval, paired_difference
from scenellm.evaluation.distance import BUCKETS

KS = (10, 20, 50)
DISTANCE_K = 20
REFERENCES = {"baseline": "ref: frequency", "trees": "ref: trees per frame",
              "trees_temporal": "ref: trees t-3..t+2"}


def _rows(results) -> dict[str, dict[str, Any]]:
    """row name → {"sums": {mode: {K: (seeds, V)}}, "mR": {mode: [per seed]},
    "distance": {mode: {bucket: (seeds, V)}}, "epoch_s": [per seed]}."""
    rows: dict[str, dict[str, Any]] = {}
    for result in results:
        data = result.per_video()
        who_rows = [("model", result.cell.variant)]
        if result.cell.variant == FULL:
            who_rows += [(who, label) for who, label in REFERENCES.items()]
        for who, row in who_rows:
            entry = rows.setdefault(row, {"sums": {}, "mR": {}, "distance": {}, "epoch_s": []})
            if who == "model" and "finetune_epoch_seconds" in result.metrics:
                entry["epoch_s"].append(result.metrics["finetune_epoch_seconds"])
            for mode, by_who in data.get("distance", {}).items():
                for bucket in BUCKETS:  # near before far, whatever the JSON's key order
                    entry["distance"].setdefault(mode, {}).setdefault(bucket, []).append(
                        by_who[who][bucket][f"R@{DISTANCE_K}"])
            for mode, by_who in data["recall_sums"].items():
                for k in KS:
                    entry["sums"].setdefault(mode, {}).setdefault(k, []).append(
                        by_who[who][f"R@{k}"])
                prefix = "" if who == "model" else f"{who}_"
                entry["mR"].setdefault(mode, []).append(
                    result.metrics.get(f"{prefix}{mode}_with_mR@20"))
    return rows


def build_table(results, samples: int = 2000) -> dict[str, Any]:
    """Rows (full model first, then variants, then references) with every statistic."""
    frames = {mode: np.asarray(f, float) for mode, f in results[0].per_video()["frames"].items()}
    distance_frames = {mode: {bucket: np.asarray(sums["frames"], float)
                              for bucket, sums in by_who["model"].items()}
                       for mode, by_who in results[0].per_video().get("distance", {}).items()}
    rows = _rows(results)
    full = rows[FULL]
    refs = set(REFERENCES.values())
    order = [n for n in rows if n not in refs] + [n for n in rows if n in refs]
    table = []
    for name in order:
        entry = rows[name]
        row = {"row": name, "seeds": len(next(iter(entry["mR"].values())))}
        for mode, by_k in entry["sums"].items():
            for k in KS:
                sums = np.asarray(by_k[k])
                key = f"{mode}_R@{k}"
                mean, low, high = interval(sums, frames[mode], samples)
                row[key] = {"mean": mean, "low": low, "high": high}
                if name != FULL:
                    base = np.asarray(full["sums"][mode][k])
                    seeds = min(len(base), len(sums))
                    d = paired_difference(sums[:seeds], base[:seeds], frames[mode], samples)
                    row[key].update(diff=d.mean, diff_low=d.low, diff_high=d.high,
                                    significant=d.significant)
            values = [v for v in entry["mR"][mode] if v is not None]
            row[f"{mode}_mR@20"] = {"mean": float(np.mean(values)) if values else None}
            for bucket, sums in entry["distance"].get(mode, {}).items():
                row[f"{mode}_{bucket}_R@{DISTANCE_K}"] = _statistic(
                    np.asarray(sums), full["distance"][mode][bucket], name == FULL,
                    distance_frames[mode][bucket], samples)
        row["s/epoch"] = {"seconds": float(np.mean(entry["epoch_s"]))
                          if entry["epoch_s"] else None}
        table.append(row)
    return {"rows": table, "test_videos": len(frames[next(iter(frames))]),
            "samples": samples}


def _statistic(sums: np.ndarray, base: list, is_full: bool, frames: np.ndarray,
               samples: int) -> dict[str, Any]:
    """Mean with its interval, and for a variant its paired difference from the full model;
    resampling the videos that hold frames of the bucket (a resample without any has no
    recall)."""
    held = frames > 0
    if not held.any():
        return {"mean": None}
    sums, frames = np.atleast_2d(sums)[:, held], frames[held]
    mean, low, high = interval(sums, frames, samples)
    stat: dict[str, Any] = {"mean": mean, "low": low, "high": high}
    if not is_full:
        base = np.atleast_2d(np.asarray(base))[:, held]
        seeds = min(len(base), len(sums))
        d = paired_difference(sums[:seeds], base[:seeds], frames, samples)
        stat.update(diff=d.mean, diff_low=d.low, diff_high=d.high, significant=d.significant)
    return stat


def _cell(stat: dict) -> str:
    if "seconds" in stat:
        return "—" if stat["seconds"] is None else f"{stat['seconds']:.1f}"
    if stat.get("mean") is None:
        return "—"
    text = f"{100 * stat['mean']:.2f}"
    if "diff" in stat:
        mark = "" if stat["significant"] else " ~"
        text += (f" ({100 * stat['diff']:+.2f} [{100 * stat['diff_low']:+.2f}, "
                 f"{100 * stat['diff_high']:+.2f}]{mark})")
    elif "low" in stat:
        text += f" [{100 * stat['low']:.2f}, {100 * stat['high']:.2f}]"
    return text


def render_markdown(table: dict, grid: str) -> str:
    columns = [c for c in table["rows"][0] if c not in ("row", "seeds")]
    head = "| row | seeds | " + " | ".join(c.replace("_", " ") for c in columns) + " |"
    lines = [f"# Ablation `{grid}`", "",
             f"Test split, with constraint, recall in %. Each cell: mean over seeds; for the "
             f"full model its 95 % video-bootstrap interval; for every other row (difference "
             f"from the full model [95 % paired video-bootstrap interval]), `~` when the "
             f"interval holds 0. {table['test_videos']} test videos, {table['samples']} "
             "resamples. mR@20: mean over seeds only. near / far: R@20 of the relations whose "
             "person and object centres lie at most / more than a third of the image width "
             "apart. s/epoch: the fine-tuning stage's wall time over its epochs, mean over seeds.",
             "", head,
             "|" + "---|" * (len(columns) + 2)]
    for row in table["rows"]:
        lines.append(f"| {row['row']} | {row['seeds']} | "
                     + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def plot_differences(table: dict, path: Path, k: int = 20) -> None:
    """Difference from the full model in R@k with its interval, PREDCLS and SGCLS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table["rows"] if r["row"] != FULL]
    modes = [c.split("_R@")[0] for c in table["rows"][0] if c.endswith(f"_R@{k}")]
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 0.45 * len(rows) + 1.5),
                             squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        stats = [r[f"{mode}_R@{k}"] for r in rows]
        y = np.arange(len(rows))
        diff = np.array([100 * s["diff"] for s in stats])
        err = np.array([[100 * (s["diff"] - s["diff_low"]) for s in stats],
                        [100 * (s["diff_high"] - s["diff"]) for s in stats]])
        colours = ["#3b6ea8" if s["significant"] else "#b0b0b0" for s in stats]
        ax.barh(y, diff, xerr=err, color=colours, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [r["row"] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"R@{k} difference from the full model (points, 95 % CI)")
        ax.set_title(f"{mode.upper()}, with constraint")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
