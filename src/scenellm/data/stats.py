"""Per-split statistics of a loaded Action Genome set: sizes, objects per frame and the
share of each label within its kind (``scenellm data inspect``)."""

from __future__ import annotations

from collections import Counter

from scenellm.data.ag import SPLITS, ActionGenome
from scenellm.data.vocab import KINDS


def split_stats(data: ActionGenome) -> dict[str, dict]:
    """``{split: {videos, frames, objects, relations, objects_per_frame,
    objects_per_frame_max, not_contacting_share, labels: {kind: {label: share}}}}``; label
    shares are fractions of the kind's labels, largest first."""
    counts = data.counts()
    out = {}
    for split in SPLITS:
        frames = [f for video in data.split(split).values() for f in video]
        labels = {kind: Counter() for kind in KINDS}
        for frame in frames:
            for o in frame.objects:
                for kind, names in KINDS.items():
                    labels[kind].update(names[i] for i in getattr(o, kind))
        shares = {kind: {name: round(n / max(sum(c.values()), 1), 4)
                         for name, n in c.most_common()} for kind, c in labels.items()}
        out[split] = {
            **counts[split],
            "objects_per_frame": round(counts[split]["objects"] / max(len(frames), 1), 3),
            "objects_per_frame_max": max((len(f.objects) for f in frames), default=0),
            "not_contacting_share": shares["contacting"].get("not_contacting", 0.0),
            "labels": shares,
        }
    return out
