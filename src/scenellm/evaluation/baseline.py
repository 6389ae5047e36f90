"""Frequency baseline (Motifs, Zellers et al. 2018): predicate distribution per
(person, object class) pair and kind, estimated on the train split.

    P(attention = a | c) = (n_{c,a} + s) / (n_c + 3 s)          (one label per pair)
    P(spatial_j = 1 | c) = (n_{c,j} + s) / (n_c + 2 s)           (multi-label, per predicate)

Unseen classes fall back to the distribution over all pairs. Attention is returned as
log-probabilities so the evaluator's softmax gives back the probabilities.
"""

from __future__ import annotations

import numpy as np

KINDS = ("attention", "spatial", "contacting")


class FrequencyBaseline:
    def __init__(self) -> None:
        self.smoothing = 1.0
        self.tables: dict[str, dict[int, np.ndarray]] = {}
        self.fallback: dict[str, np.ndarray] = {}

    def fit(self, object_classes: np.ndarray, attention: np.ndarray, spatial: np.ndarray,
            contacting: np.ndarray, smoothing: float = 1.0) -> FrequencyBaseline:
        """object_classes (N,), attention (N,) kind-local index, spatial (N, 6) and
        contacting (N, 17) multi-hot."""
        self.smoothing = smoothing
        classes = np.asarray(object_classes)
        att_hot = np.eye(3)[np.asarray(attention, dtype=int)]
        data = {"attention": att_hot, "spatial": np.asarray(spatial, float),
                "contacting": np.asarray(contacting, float)}
        for kind, hot in data.items():
            self.tables[kind] = {int(c): self._estimate(kind, hot[classes == c])
                                 for c in np.unique(classes)}
            self.fallback[kind] = self._estimate(kind, hot)
        return self

    def _estimate(self, kind: str, hot: np.ndarray) -> np.ndarray:
        s = self.smoothing
        if kind == "attention":
            return (hot.sum(0) + s) / (len(hot) + hot.shape[1] * s)
        return (hot.sum(0) + s) / (len(hot) + 2 * s)

    def predict(self, object_classes: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for kind in KINDS:
            rows = [self.tables[kind].get(int(c), self.fallback[kind]) for c in object_classes]
            width = len(self.fallback[kind])
            out[kind] = np.vstack(rows) if rows else np.zeros((0, width))
        out["attention"] = np.log(out["attention"])
        return out

    def to_dict(self) -> dict:
        return {"smoothing": self.smoothing,
                "tables": {k: {str(c): v.tolist() for c, v in t.items()}
                           for k, t in self.tables.items()},
                "fallback": {k: v.tolist() for k, v in self.fallback.items()}}

    @classmethod
    def from_dict(cls, payload: dict) -> FrequencyBaseline:
        self = cls()
        self.smoothing = payload["smoothing"]
        self.tables = {k: {int(c): np.asarray(v) for c, v in t.items()}
                       for k, t in payload["tables"].items()}
        self.fallback = {k: np.asarray(v) for k, v in payload["fallback"].items()}
        return self
