"""Evaluation report: a terminal table and PNG plots, model beside the frequency baseline."""

from __future__ import annotations

from pathlib import Path

from scenellm.evaluation.mean_recall import KS


def render_table(results: dict) -> str:
    """Plain-text table: one row per (mode, constraint), model and baseline R@K and mR@20."""
    head = (f"{'mode':8s} {'constraint':10s} {'who':9s} " + " ".join(f"R@{k:<5d}" for k in KS)
            + "  mR@20   mR@20f")
    lines = [head, "-" * len(head)]
    for mode in results["model"]:
        for c in results["model"][mode]:
            for who in ("model", "baseline"):
                s = results[who][mode][c]
                lines.append(f"{mode:8s} {c:10s} {who:9s} "
                             + " ".join(f"{100 * s[f'R@{k}']:6.2f}" for k in KS)
                             + f"  {100 * s['mR@20']:6.2f}  {100 * s['mR@20_frame']:6.2f}")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recalls(results: dict, path: Path) -> None:
    plt = _pyplot()
    modes = list(results["model"])
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 3.2), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        labels, model, base = [], [], []
        for c in results["model"][mode]:
            for k in (10, 20, 50):
                labels.append(f"{c}\nR@{k}")
                model.append(100 * results["model"][mode][c][f"R@{k}"])
                base.append(100 * results["baseline"][mode][c][f"R@{k}"])
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], model, 0.4, label="SceneLLM", color="#3b6ea8")
        ax.bar([i + 0.2 for i in x], base, 0.4, label="frequency baseline", color="#c0c0c0")
        ax.set_xticks(list(x), labels, fontsize=7)
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
