"""Frequency baseline (Motifs, Zellers et al. 2018, "FREQ"): predicate statistics of each
(person, object class) pair, counted on the training pairs.

With ``n_c`` training pairs of object class ``c`` and smoothing ``s``:

    P(attention = a | c) = (n_{c,a} + s) / (n_c + 3 s)      one label per pair (softmax head)
    P(spatial_j = 1 | c) = (n_{c,j} + s) / (n_c + 2 s)      one Bernoulli per predicate
    P(contacting_j = 1 | c) likewise                          (sigmoid heads)

A class never seen in training gets the statistics of all pairs. Attention comes out as
log-probabilities, so the evaluator's softmax gives the probabilities back exactly (up to
rounding); spatial and contacting come out as probabilities, as the evaluator expects.
"""

from __future__ import annotations

import numpy as np

from scenellm.data.vocab import KINDS

UNLABELLED = -100  # the model's IGNORE_INDEX: a pair without an attention label
_WIDTH = {
    kind: len(names) for kind, names in KINDS.items()
}  # attention 3, spatial 6, contacting 17


class FrequencyBaseline:
    """Predicate frequencies per object class; ``fit`` then ``predict``."""

    def __init__(self) -> None:
        self.smoothing = 1.0
        self.classes = np.zeros(0, dtype=np.int64)  # (C,) sorted object class ids
        self.pairs = np.zeros(0)  # (C,) training pairs per class
        self.counts = {kind: np.zeros((0, w)) for kind, w in _WIDTH.items()}  # (C, width)

    def fit(
        self,
        object_classes: np.ndarray,
        attention: np.ndarray,
        spatial: np.ndarray,
        contacting: np.ndarray,
        smoothing: float = 1.0,
    ) -> FrequencyBaseline:
        """Count the training pairs: ``object_classes`` (N,), ``attention`` (N,) kind-local
        index (``UNLABELLED`` = -100: the pair has no attention label and adds no attention
        count), ``spatial`` (N, 6) and ``contacting`` (N, 17) multi-hot."""
        attention = np.asarray(attention, dtype=np.int64).reshape(-1)
        labelled = attention != UNLABELLED
        valid = (attention >= 0) & (attention < _WIDTH["attention"])
        if not np.all(valid | ~labelled):
            raise ValueError(f"attention labels must lie in 0..{_WIDTH['attention'] - 1} "
                             f"(or {UNLABELLED} for none)")
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        self.classes, owner = np.unique(
            np.asarray(object_classes, dtype=np.int64), return_inverse=True
        )
        hot = {
            "attention": np.eye(_WIDTH["attention"])[np.where(labelled, attention, 0)]
            * labelled[:, None],  # (N, 3)
            "spatial": np.asarray(spatial, dtype=np.float64).reshape(len(attention), -1),
            "contacting": np.asarray(contacting, dtype=np.float64).reshape(len(attention), -1),
        }
        self.smoothing = float(smoothing)
        self.pairs = np.bincount(owner, minlength=len(self.classes)).astype(np.float64)
        self.counts = {kind: np.zeros((len(self.classes), x.shape[1])) for kind, x in hot.items()}
        for kind, x in hot.items():
            np.add.at(self.counts[kind], owner, x)
        return self

    def probabilities(self, kind: str, counts: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Smoothed frequencies of one kind from ``counts`` (..., width) over ``pairs`` (...)."""
        outcomes = counts.shape[-1] if kind == "attention" else 2
        return (counts + self.smoothing) / (pairs[..., None] + outcomes * self.smoothing)

    def predict(self, object_classes: np.ndarray) -> dict[str, np.ndarray]:
        """Scores of the (person, object) pairs with these object classes (P,):
        ``attention`` (P, 3) log-probabilities, ``spatial`` (P, 6) and ``contacting`` (P, 17)
        probabilities, float64."""
        query = np.asarray(object_classes, dtype=np.int64).reshape(-1)
        where = np.searchsorted(self.classes, query).clip(max=max(len(self.classes) - 1, 0))
        seen = (self.classes[where] == query) if len(self.classes) else np.zeros(len(query), bool)
        out = {}
        for kind, counts in self.counts.items():
            per_class = self.probabilities(kind, counts, self.pairs)  # (C, width)
            overall = self.probabilities(kind, counts.sum(0), self.pairs.sum())  # (width,)
            table = np.vstack((per_class, overall))  # last row: unseen classes
            out[kind] = table[np.where(seen, where, len(per_class))]
        with np.errstate(divide="ignore"):  # unsmoothed zero counts: logit -inf, softmax 0
            out["attention"] = np.log(out["attention"])
        return out

    def to_dict(self) -> dict:
        """JSON-serializable counts (the probabilities follow from them)."""
        return {
            "smoothing": self.smoothing,
            "classes": self.classes.tolist(),
            "pairs": self.pairs.tolist(),
            "counts": {kind: c.tolist() for kind, c in self.counts.items()},
        }

    @classmethod
    def from_dict(cls, payload: dict) -> FrequencyBaseline:
        """Inverse of ``to_dict``."""
        baseline = cls()
        baseline.smoothing = float(payload["smoothing"])
        baseline.classes = np.asarray(payload["classes"], dtype=np.int64)
        baseline.pairs = np.asarray(payload["pairs"], dtype=np.float64)
        baseline.counts = {
            kind: np.asarray(payload["counts"][kind], dtype=np.float64).reshape(-1, width)
            for kind, width in _WIDTH.items()
        }
        return baseline
