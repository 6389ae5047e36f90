"""Per-frame recall and the two mean recalls of the literature, from per-triplet hit ranks.

Both mean recalls average over the predicates p that occur in the ground truth:

- ``mR@K`` (TEMPURA): hits and GT counts of p summed over all frames first,
  ``mR@K = mean_p  sum_f hits_{f,p} / sum_f count_{f,p}``.
- ``mR@K_frame`` (DSG-DETR / OED, Motifs' per-image mean recall): the recall of p in each
  frame where p occurs, averaged over those frames,
  ``mR@K = mean_p  mean_{f: count_{f,p} > 0}  hits_{f,p} / count_{f,p}``.

A frame's own recall is STTran's ``R@K = sum_p hits_{f,p} / sum_p count_{f,p}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (10, 20, 50, 100)


class PredicateTally:
    """Running per-predicate sums over every frame added, for ``n_predicates`` predicates."""

    def __init__(self, n_predicates: int) -> None:
        self.n = n_predicates
        self.gt_count = np.zeros(n_predicates)  # (P,) GT triplets
        self.hits = np.zeros((len(KS), n_predicates))  # (K, P) GT triplets hit at K
        self.frames_with = np.zeros(n_predicates)  # (P,) frames whose GT holds p
        self.frame_recall_sum = np.zeros((len(KS), n_predicates))  # (K, P) sum_f recall_{f,p}

    def add(
        self, frame: np.ndarray, predicate: np.ndarray, best: np.ndarray, n_frames: int
    ) -> np.ndarray:
        """Add ``n_frames`` frames whose GT triplets have ``frame``, ``predicate`` and ``best``
        (rank of the first prediction hitting them) (G,); return their recalls (F, K)."""
        n, n_k = self.n, len(KS)
        level = np.searchsorted(KS, best, side="right")  # (G,) hit at KS[i] iff level <= i

        def hits_by(index: np.ndarray, size: int, weights=None) -> np.ndarray:
            """(size, K) sums of ``weights`` over the GT triplets hit at each K."""
            table = np.bincount(index * (n_k + 1) + level, weights, size * (n_k + 1))
            return table.reshape(size, n_k + 1)[:, :n_k].cumsum(1)

        cell = frame * n + predicate  # (G,) the triplet's (frame, predicate) cell
        cell_count = np.bincount(cell, minlength=n_frames * n)  # (F * P,)
        self.gt_count += np.bincount(predicate, minlength=n)
        self.hits += hits_by(predicate, n).T
        self.frames_with += (cell_count.reshape(n_frames, n) > 0).sum(0)
        # sum_f hits_{f,p} / count_{f,p} = sum over p's triplets of hit / count of its cell
        self.frame_recall_sum += hits_by(predicate, n, 1.0 / cell_count[cell]).T
        return hits_by(frame, n_frames) / np.bincount(frame, minlength=n_frames)[:, None]

    def summary(self, names: Sequence[str]) -> dict:
        """``mR@K``, ``mR@K_frame`` and ``per_predicate`` ``{K: {name: TEMPURA recall}}`` over
        the predicates seen; NaN before any frame."""
        seen = self.gt_count > 0
        out: dict = {"per_predicate": {}}
        for i, k in enumerate(KS):
            recall = self.hits[i][seen] / self.gt_count[seen]
            per_frame = self.frame_recall_sum[i][seen] / self.frames_with[seen]
            out[f"mR@{k}"] = float(recall.mean()) if seen.any() else float("nan")
            out[f"mR@{k}_frame"] = float(per_frame.mean()) if seen.any() else float("nan")
            seen_names = [name for name, s in zip(names, seen, strict=True) if s]
            out["per_predicate"][k] = dict(zip(seen_names, recall.tolist(), strict=True))
        return out
