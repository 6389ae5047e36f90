"""A training stage's per-epoch history as a PNG: training loss and the validation metric
per epoch, each on its own axis (what ``dvc plots`` draws from the same records)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenellm.stages.dvc import HISTORY_PLOTS


def plot_history(records: list[dict[str, Any]], stage: str, path: Path, ids: str = "") -> Path:
    """One panel per plotted field of :data:`HISTORY_PLOTS` ``[stage]``, x = epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = HISTORY_PLOTS[stage]
    fields = [f for f in spec["y"] if any(f in r for r in records)]
    fig, axes = plt.subplots(1, max(len(fields), 1), figsize=(4.2 * max(len(fields), 1), 3),
                             squeeze=False)
    for ax, field in zip(axes[0], fields, strict=False):
        points = [(r["epoch"], r[field]) for r in records if field in r]
        ax.plot([e for e, _ in points], [v for _, v in points], marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(field, fontsize=9)
        if len(points) == 1:
            ax.set_xticks([points[0][0]])
    fig.suptitle(f"{spec['title']}{'  ·  ' + ids if ids else ''}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path
