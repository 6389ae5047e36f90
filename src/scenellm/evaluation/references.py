"""Strong references on the same pairs: box-only gradient-boosted trees (scikit-learn's
``HistGradientBoostingClassifier``), per frame and with a temporal window.

Per (person, object) pair the features are the object's class (a categorical feature),
both boxes normalised by the image size, and their relation: centre offsets, log size
ratios, IoU and the share of the object inside the person box. ``window=(-3, 2)`` adds the
same object's box and relation in frames t-3 … t+2 (missing frames are NaN, which the trees
split on natively). One classifier per kind and label: attention is one 3-way classifier,
each spatial and contacting predicate a binary one (a predicate never seen positive in
training scores 0).

:class:`BoxTrees` turns predictions into the model's output format, so the references
pass through the same STTran adapters and evaluator as the model under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenellm.data.vocab import KINDS

EPS = 1e-6


def _geometry(person: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """(P, 4) + (P, 4) xyxy in [0, 1] → (P, 15): both boxes and their relation."""
    pc = (person[:, :2] + person[:, 2:]) / 2
    oc = (obj[:, :2] + obj[:, 2:]) / 2
    pw = np.clip(person[:, 2:] - person[:, :2], EPS, None)
    ow = np.clip(obj[:, 2:] - obj[:, :2], EPS, None)
    lo = np.maximum(person[:, :2], obj[:, :2])
    hi = np.minimum(person[:, 2:], obj[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    union = np.prod(pw, axis=1) + np.prod(ow, axis=1) - inter
    return np.column_stack([person, obj, (oc - pc) / pw, np.log(ow / pw), inter / union,
                            inter / np.prod(ow, axis=1)])


def pair_features(batch, window: tuple[int, int] | None = None,
                  labels=None) -> np.ndarray:
    """Features (P, D) of a :class:`~scenellm.model.batch.VideoBatch`'s pairs; column 0 is
    the object class (``labels`` (N,), default the batch's ground truth)."""
    boxes = batch.boxes_norm.cpu().numpy().astype(np.float64)  # (N, 4)
    pairs = batch.pair_idx.cpu().numpy()  # (P, 2)
    person, obj = boxes[pairs[:, 0]], boxes[pairs[:, 1]]
    labels = batch.labels if labels is None else labels
    classes = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)[pairs[:, 1]]
    classes = classes.astype(np.float64)
    columns = [classes[:, None], _geometry(person, obj)]
    if window is not None:
        columns += _window(batch, pairs, boxes, window)
    return np.hstack(columns)


def _window(batch, pairs: np.ndarray, boxes: np.ndarray, window: tuple[int, int]) -> list:
    """The same object's geometry at frame offsets in ``window`` (not 0), NaN if absent.
    An object is followed by its class within the video (AG's objects are one per class
    and frame)."""
    video = batch.video_of_pair.cpu().numpy()
    frame = batch.frame_pos.cpu().numpy()[batch.frame_of_pair.cpu().numpy()]
    ident = batch.labels.cpu().numpy()[pairs[:, 1]]
    track = {key: i for i, key in enumerate(zip(video.tolist(), ident.tolist(),
                                                frame.tolist(), strict=True))}
    geometry = _geometry(boxes[pairs[:, 0]], boxes[pairs[:, 1]])
    out = []
    for offset in range(window[0], window[1] + 1):
        if offset == 0:
            continue
        rows = np.array([track.get((v, o, f + offset), -1)
                         for v, o, f in zip(video.tolist(), ident.tolist(), frame.tolist(),
                                            strict=True)])
        out.append(np.where(rows[:, None] >= 0, geometry[np.maximum(rows, 0)], np.nan))
    return out


@dataclass
class BoxTrees:
    """Gradient-boosted trees on pair features; ``fit`` then ``outputs``."""

    window: tuple[int, int] | None = None
    seed: int = 0
    max_iter: int = 100
    models: dict[str, list] = field(default_factory=dict)

    def _classifier(self):
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=0.1,
                                              categorical_features=[0], random_state=self.seed)

    def fit(self, features: np.ndarray, attention: np.ndarray, spatial: np.ndarray,
            contacting: np.ndarray) -> BoxTrees:
        """``attention`` (P,) kind-local (negative: unlabelled, left out), ``spatial``
        (P, 6) and ``contacting`` (P, 17) multi-hot."""
        labelled = attention >= 0
        self.models = {"attention": [self._fit(features[labelled], attention[labelled])]}
        for kind, targets in (("spatial", spatial), ("contacting", contacting)):
            self.models[kind] = [self._fit(features, targets[:, j].astype(int))
                                 for j in range(targets.shape[1])]
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray):
        if len(np.unique(y)) < 2:  # a label never (or always) seen: a constant
            return ("constant", int(y[0]) if len(y) else 0)
        return self._classifier().fit(x, y)

    @staticmethod
    def _proba(model, x: np.ndarray, width: int) -> np.ndarray:
        """(P, width) class probabilities, classes never seen in training at 0."""
        out = np.zeros((len(x), width))
        if isinstance(model, tuple):
            out[:, model[1]] = 1.0
            return out
        out[:, model.classes_] = model.predict_proba(x)
        return out

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """attention (P, 3) log-probabilities, spatial (P, 6) and contacting (P, 17)
        probabilities."""
        att = self._proba(self.models["attention"][0], features, len(KINDS["attention"]))
        out = {"attention": np.log(np.clip(att, EPS, None))}
        for kind in ("spatial", "contacting"):
            out[kind] = np.column_stack([self._proba(m, features, 2)[:, 1]
                                         for m in self.models[kind]])
        return out

    def outputs(self, batch, out: dict) -> dict:
        """``out`` (object ``labels`` and ``object_logits`` in use) with this reference's
        predicate scores for the batch."""
        return self.outputs_many([batch], [out])[0]

    def outputs_many(self, batches: list, outs: list[dict]) -> list[dict]:
        """:meth:`outputs` of several batches with one ``predict_proba`` call per classifier
        for all of them (the trees score each row alone: the numbers are those of one call
        per batch)."""
        import torch

        features = [pair_features(b, self.window, o["labels"])
                    for b, o in zip(batches, outs, strict=True)]
        rows = np.concatenate(features) if features else np.zeros((0, 0))
        pred = self.predict(rows) if len(rows) else {
            "attention": np.zeros((0, len(KINDS["attention"]))),
            "spatial": np.zeros((0, len(self.models["spatial"]))),
            "contacting": np.zeros((0, len(self.models["contacting"])))}
        to = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        edges = np.cumsum([0, *(len(f) for f in features)])
        return [{**out, "attention_logits": to(pred["attention"][a:b]),
                 "spatial_logits": torch.logit(to(pred["spatial"][a:b]).clamp(EPS, 1 - EPS)),
                 "contacting_logits": torch.logit(
                     to(pred["contacting"][a:b]).clamp(EPS, 1 - EPS))}
                for out, a, b in zip(outs, edges[:-1], edges[1:], strict=True)]


@dataclass
class ObjectClassifier:
    """One fixed object classifier for every reference in SGCLS: multinomial logistic
    regression on the standardised detector features of the train split's objects, so the
    references never move with the model under test."""

    seed: int = 0
    model: object = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def fit(self, feats: np.ndarray, labels: np.ndarray) -> ObjectClassifier:
        from sklearn.linear_model import LogisticRegression

        self.mean, self.std = feats.mean(0), feats.std(0) + EPS
        self.model = LogisticRegression(max_iter=300, random_state=self.seed)
        self.model.fit((feats - self.mean) / self.std, labels)
        return self

    def outputs(self, batch, n_classes: int) -> dict:
        """``{"labels" (N,), "object_logits" (N, n_classes)}``: its predictions for the
        batch's objects; the person node keeps its label."""
        import torch

        feats = batch.obj_feats.cpu().numpy()
        proba = np.full((len(feats), n_classes), EPS)
        proba[:, self.model.classes_] = self.model.predict_proba((feats - self.mean) / self.std)
        logits = torch.as_tensor(np.log(proba), dtype=torch.float32)
        labels = torch.where(batch.is_person.cpu(), batch.labels.cpu(), logits.argmax(1))
        return {"labels": labels, "object_logits": logits}
