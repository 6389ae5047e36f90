"""Evaluation report: a terminal table and PNG plots, the model beside its references."""

from __future__ import annotations

from pathlib import Path

from scenellm.evaluation.mean_recall import KS

NAMES = {"model": "SceneLLM", "baseline": "frequency", "trees": "trees",
         "trees_temporal": "trees t-3..t+2"}
COLOURS = {"model": "#3b6ea8", "baseline": "#c0c0c0", "trees": "#8fbf7f",
           "trees_temporal": "#3f8f4f"}


def predicate_support(evaluator) -> dict[str, int]:
    """GT triplets per predicate (every predicate, 0 included) that ``evaluator`` scored:
    what tells "no test example" from a recall of 0."""
    counts = evaluator._tally.gt_count  # the evaluator's own running per-predicate tally
    return dict(zip(evaluator.AG_all_predicates, counts.astype(int).tolist(), strict=True))


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


def _finite(values: list[float]) -> bool:
    return any(v == v for v in values)  # NaN != NaN


def scored_modes(results: dict) -> list[str]:
    """The modes in which the model scored at least one frame (the others get no panel)."""
    return [m for m in results["model"] if _finite(
        [results["model"][m][c]["R@20"] for c in results["model"][m]])]


def predicate_rows(results: dict, mode: str = "predcls", k: int = 20) -> list[dict]:
    """Per predicate: ``{"name", "support" (test triplets, None if unknown), "model",
    "baseline" (R@K, None without a test example)}``, best model recall first and the
    predicates without test examples last."""
    scored = results["model"][mode]["with"]
    model = scored["per_predicate"].get(str(k), scored["per_predicate"].get(k, {}))
    base_pp = results["baseline"][mode]["with"]["per_predicate"]
    base = base_pp.get(str(k), base_pp.get(k, {}))
    support = scored.get("support") or dict.fromkeys(model)
    names = sorted(support, key=lambda n: (n not in model, -model.get(n, 0.0), n))
    return [{"name": n, "support": support[n], "model": model.get(n),
             "baseline": base.get(n) if n in model else None} for n in names]


def plot_recalls(results: dict, path: Path, ids: str = "") -> None:
    """Per mode, recall and mean recall at every K under each constraint, one bar per
    predictor; ``ids`` (data version, stage fingerprint) titles the figure. A mode without
    any scored frame gets no panel."""
    plt = _pyplot()
    modes = scored_modes(results)
    who = list(results)
    width = 0.8 / len(who)
    fig, axes = plt.subplots(max(len(modes), 1), 2, figsize=(13, 3.2 * max(len(modes), 1)),
                             squeeze=False)
    for row, mode in zip(axes, modes, strict=False):
        constraints = list(results["model"][mode])
        for ax, metric in zip(row, ("R", "mR"), strict=True):
            labels = [f"{c}\n{metric}@{k}" for c in constraints for k in KS]
            top = 0.0
            for j, name in enumerate(who):
                values = [100 * results[name][mode][c][f"{metric}@{k}"]
                          for c in constraints for k in KS]
                top = max([top, *(v for v in values if v == v)])
                ax.bar([i - 0.4 + (j + 0.5) * width for i in range(len(labels))], values,
                       width, label=NAMES.get(name, name), color=COLOURS.get(name))
            ax.set_xticks(list(range(len(labels))), labels, fontsize=6)
            ax.set_ylim(0, max(top * 1.12, 1.0))  # never a symmetric axis around 0
            ax.set_ylabel(f"{'recall' if metric == 'R' else 'mean recall'} (%)")
            ax.set_title(f"{mode.upper()} {metric}@K", fontsize=9)
        row[0].legend(fontsize=7, ncols=len(who))
    if not modes:
        for ax in axes[0]:
            ax.axis("off")
        axes[0][0].text(0.5, 0.5, "no test frame was scored", ha="center")
    fig.suptitle(f"test split{'  ·  ' + ids if ids else ''}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def plot_per_predicate(results: dict, path: Path, mode: str = "predcls", k: int = 20,
                       ids: str = "") -> None:
    """Per predicate, R@K of the model and the frequency baseline with constraint, each
    predicate labelled with its number of test triplets; a predicate without any is marked
    "no test example" instead of drawn as a recall of 0."""
    plt = _pyplot()
    rows = predicate_rows(results, mode, k)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    x = list(range(len(rows)))
    ax.bar([i - 0.2 for i in x], [100 * (r["model"] or 0.0) for r in rows], 0.4,
           label="SceneLLM", color="#3b6ea8")
    ax.bar([i + 0.2 for i in x], [100 * (r["baseline"] or 0.0) for r in rows], 0.4,
           label="frequency baseline", color="#c0c0c0")
    for i, r in enumerate(rows):
        if r["model"] is None:
            ax.text(i, 1, "no test example", rotation=90, ha="center", va="bottom",
                    fontsize=6, color="#888888")
    labels = [r["name"] if r["support"] is None else f"{r['name']} ({r['support']})"
              for r in rows]
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"R@{k} (%)")
    ax.set_title(f"{mode.upper()} per-predicate recall, with constraint (test triplets in "
                 f"brackets){'  ·  ' + ids if ids else ''}", fontsize=9)
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
