"""Evaluation report: a terminal table and PNG plots, the model beside its references."""

from __future__ import annotations

from pathlib import Path

from scenellm.evaluation.mean_recall import KS

NAMES = {"model": "SceneLLM", "baseline": "frequency", "trees": "trees",
         "trees_temporal": "trees t-3..t+2"}
COLOURS = {"model": "#3b6ea8", "baseline": "#c0c0c0", "trees": "#8fbf7f",
           "trees_temporal": "#3f8f4f"}


def render_table(results: dict) -> str:
    """Plain-text table: one row per (mode, constraint, predictor), R@K and both mR@20."""
    head = (f"{'mode':7s} {'cons.':5s} {'who':14s} "
            + " ".join(f"R@{k:<5d}" for k in KS) + "  mR@20   mR@20f")
    lines = [head, "-" * len(head)]
    for mode in results["model"]:
        for c in results["model"][mode]:
            for who in results:
                s = results[who][mode][c]
                lines.append(f"{mode:7s} {c:5s} {NAMES.get(who, who):14s} "
                             + " ".join(f"{100 * s[f'R@{k}']:6.2f}" for k in KS)
                             + f"  {100 * s['mR@20']:6.2f}  {100 * s['mR@20_frame']:6.2f}")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recalls(results: dict, path: Path) -> None:
    """Grouped bars per mode: R@10/20/50 under each constraint, one bar per predictor."""
    plt = _pyplot()
    modes, who = list(results["model"]), list(results)
    width = 0.8 / len(who)
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 3.4), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        labels = [f"{c}\nR@{k}" for c in results["model"][mode] for k in (10, 20, 50)]
        for j, name in enumerate(who):
            values = [100 * results[name][mode][c][f"R@{k}"]
                      for c in results["model"][mode] for k in (10, 20, 50)]
            ax.bar([i - 0.4 + (j + 0.5) * width for i in range(len(labels))], values, width,
                   label=NAMES.get(name, name), color=COLOURS.get(name))
        ax.set_xticks(list(range(len(labels))), labels, fontsize=7)
        ax.set_ylabel("recall (%)")
        ax.set_title(mode.upper())
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def plot_per_predicate(results: dict, path: Path, mode: str = "predcls", k: int = 20) -> None:
    plt = _pyplot()
    model = results["model"][mode]["with"]["per_predicate"][str(k)] \
        if str(k) in results["model"][mode]["with"]["per_predicate"] \
        else results["model"][mode]["with"]["per_predicate"][k]
    base_pp = results["baseline"][mode]["with"]["per_predicate"]
    base = base_pp.get(str(k), base_pp.get(k, {}))
    names = sorted(model, key=lambda n: -model[n])
    fig, ax = plt.subplots(figsize=(10, 3.5))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [100 * model[n] for n in names], 0.4, label="SceneLLM",
           color="#3b6ea8")
    ax.bar([i + 0.2 for i in x], [100 * base.get(n, 0.0) for n in names], 0.4,
           label="frequency baseline", color="#c0c0c0")
    ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"R@{k} (%)")
    ax.set_title(f"{mode.upper()} per-predicate recall, with constraint")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def render_distance_table(distance: dict) -> str:
    """Plain-text table of recall by subject–object distance (with constraint): one row per
    (mode, predictor), R@K of near and far relations and the frames holding each."""
    from scenellm.evaluation.distance import BUCKETS

    head = (f"{'mode':7s} {'who':14s} "
            + " ".join(f"{b}R@{k:<4d}" for b in BUCKETS for k in KS[:3])
            + " " + " ".join(f"{b}_frames" for b in BUCKETS))
    lines = ["recall by subject-object centre distance (far: > 1/3 image width), "
             "with constraint", head, "-" * len(head)]
    for mode in distance["model"]:
        for who in distance:
            s = distance[who][mode]
            lines.append(f"{mode:7s} {NAMES.get(who, who):14s} "
                         + " ".join(f"{100 * s[b][f'R@{k}']:8.2f}" for b in BUCKETS
                                    for k in KS[:3])
                         + " " + " ".join(f"{s[b]['frames']:11d}" for b in BUCKETS))
    return "\n".join(lines) + "\n"


def plot_distance(distance: dict, path: Path, k: int = 20) -> None:
    """R@k of near and far relations per predictor, one panel per mode."""
    import numpy as np

    from scenellm.evaluation.distance import BUCKETS

    plt = _pyplot()
    modes = list(distance["model"])
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 3.5), squeeze=False)
    who = list(distance)
    x = np.arange(len(who))
    for ax, mode in zip(axes[0], modes, strict=True):
        for i, bucket in enumerate(BUCKETS):
            ax.bar(x + (i - 0.5) * 0.4, [100 * distance[w][mode][bucket][f"R@{k}"] for w in who],
                   0.4, label=bucket)
        ax.set_xticks(x, [NAMES.get(w, w) for w in who], fontsize=8, rotation=20)
        ax.set_ylabel(f"R@{k} (%)")
        ax.set_title(f"{mode.upper()}, with constraint: near vs far (> W/3)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
