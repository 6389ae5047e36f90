"""``SceneGraphEvaluator``: a vectorized drop-in for STTran's ``BasicSceneGraphEvaluator``
(yrcong/STTran ``lib/evaluation_recall.py``).

Same constructor, ``result_dict``, ``reset_result``, ``print_stats`` and
``evaluate_scene_graph(gt, pred)``, one video per call in STTran's formats (fields listed in
``scenellm.evaluation.sttran_inputs``). Per-frame recalls equal STTran's whenever scores have
no ties (tie rule: ``scenellm.evaluation.recall``). Unlike STTran, inputs are never modified.

Each call only reads its video into arrays; the scoring runs over all queued videos at once,
when results are read (``result_dict`` is a property) or every ``flush_frames`` frames, since
per-video numpy calls would cost more than the work itself.

``summary()`` adds both mean recalls of the literature, ``mR@K`` (TEMPURA) and
``mR@K_frame`` (DSG-DETR / OED), defined in ``scenellm.evaluation.mean_recall``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scenellm.evaluation.mean_recall import KS, PredicateTally
from scenellm.evaluation.ranking import rank_predictions
from scenellm.evaluation.recall import Triplets, first_match_rank
from scenellm.evaluation.sttran_inputs import (
    PERSON,
    VideoPredictions,
    VideoTruth,
    read_ground_truth,
    read_predictions,
)
from scenellm.evaluation.triplets import ground_truth_triplets, relation_rows

_CONSTRAINTS = {False: "with", None: "with", "with": "with", "semi": "semi", "no": "no"}
_MODES = ("predcls", "sgcls", "sgdet")


class SceneGraphEvaluator:
    """Recall@K (K = 10, 20, 50, 100) of dynamic scene graphs, STTran's protocol.

    Args:
        mode: ``predcls`` (object labels / scores from ``pred['labels'|'scores']``),
            ``sgcls`` or ``sgdet`` (from ``pred['pred_labels'|'pred_scores']``).
        AG_object_classes: object names by STTran id (kept for API compatibility).
        AG_all_predicates: the 26 predicate names; a triplet's predicate is an index here.
        AG_attention_predicates, AG_spatial_predicates, AG_contacting_predicates: the
            kind-local orders that GT label indices and score columns refer to.
        iou_threshold: IoU (+1-pixel convention) both boxes of a hit must reach.
        constraint: ``False``/``'with'`` (argmax per row), ``'semi'`` (argmax for attention,
            spatial/contacting above ``semithreshold``) or ``'no'`` (top 100 cells).
        semithreshold: the ``semi`` threshold; ``None`` means 0.9.
    """

    def __init__(
        self,
        mode: str,
        AG_object_classes: Sequence[str],
        AG_all_predicates: Sequence[str],
        AG_attention_predicates: Sequence[str],
        AG_spatial_predicates: Sequence[str],
        AG_contacting_predicates: Sequence[str],
        iou_threshold: float = 0.5,
        constraint: str | bool | None = False,
        semithreshold: float | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if constraint not in _CONSTRAINTS:
            raise ValueError(
                f"constraint must be False, 'with', 'semi' or 'no', got {constraint!r}"
            )
        self.mode = mode
        self.constraint = _CONSTRAINTS[constraint]
        self.iou_threshold = iou_threshold
        self.semithreshold = 0.9 if semithreshold is None else semithreshold
        self.AG_object_classes = list(AG_object_classes)
        self.AG_all_predicates = list(AG_all_predicates)
        kinds = (AG_attention_predicates, AG_spatial_predicates, AG_contacting_predicates)
        self.kind_sizes = tuple(len(kind) for kind in kinds)
        self.predicate_maps = tuple(
            np.array([self.AG_all_predicates.index(p) for p in kind], dtype=np.int64)
            for kind in kinds
        )
        self.flush_frames = 1024  # bounds memory; larger batches gain little
        self.reset_result()

    @property
    def result_dict(self) -> dict[str, dict[int, list[float]]]:
        """``{mode + '_recall': {K: [recall of each frame, in evaluation order]}}``."""
        self._flush()
        return self._result_dict

    def reset_result(self) -> None:
        """Forget every evaluated frame."""
        self._queue: list[tuple[VideoTruth, VideoPredictions]] = []
        self._queued_frames = 0
        self._result_dict = {self.mode + "_recall": {k: [] for k in KS}}
        self._tally = PredicateTally(len(self.AG_all_predicates))

    def evaluate_scene_graph(self, gt: list, pred: dict) -> None:
        """Score one video: ``gt`` a list of frames, ``pred`` STTran's prediction dict.

        The video is read (and checked) now; the vectorized scoring runs on all queued
        videos together when results are read, or once ``flush_frames`` frames are queued.
        """
        if not gt:
            return
        truth = read_ground_truth(gt, self.kind_sizes)
        pairs = read_predictions(pred, len(gt), use_pred_labels=self.mode != "predcls")
        self._queue.append((truth, pairs))
        self._queued_frames += len(gt)
        if self._queued_frames >= self.flush_frames:
            self._flush()

    def _flush(self) -> None:
        """Score the queued videos at once: frames are the groups of every segment op."""
        if not self._queue:
            return
        truth = ground_truth_triplets([t for t, _ in self._queue], self.predicate_maps)
        rows = relation_rows([p for _, p in self._queue])
        n_frames = self._queued_frames
        self._queue, self._queued_frames = [], 0
        # rows are frame-major, so the predictions come out grouped by frame, in list order
        ranked = rank_predictions(rows, self.constraint, self.semithreshold)
        sub, obj, frame, rank = ranked.sub, ranked.obj, ranked.frame, ranked.rank
        predicate = ranked.predicate
        n_classes = max(PERSON, truth.obj_class.max(initial=0), rows.classes.max(initial=0)) + 1
        n_predicates = max(len(self.AG_all_predicates), rows.rel_scores.shape[1])
        dims = (n_frames, n_classes, n_predicates, n_classes)
        pred_key = (frame, rows.classes[sub], predicate, rows.classes[obj])
        gt_key = (truth.frame, truth.sub_class, truth.predicate, truth.obj_class)
        best = first_match_rank(
            Triplets(np.ravel_multi_index(gt_key, dims), truth.sub, truth.obj, truth.boxes),
            Triplets(np.ravel_multi_index(pred_key, dims), sub, obj, rows.boxes),
            rank,
            self.iou_threshold,
        )
        recall = self._tally.add(truth.frame, truth.predicate, best, n_frames)  # (F, K)
        for i, k in enumerate(KS):
            self._result_dict[self.mode + "_recall"][k].extend(recall[:, i].tolist())

    def print_stats(self) -> None:
        """Print R@K as STTran does."""
        print("======================" + self.mode + "============================")
        for k, v in self.result_dict[self.mode + "_recall"].items():
            print(f"R@{k:d}: {np.mean(v):f}")

    def summary(self) -> dict:
        """``R@K``, ``mR@K`` (TEMPURA), ``mR@K_frame`` (DSG-DETR / OED), ``per_predicate``
        ``{K: {name: recall}}`` (TEMPURA-style, predicates present in GT) and ``frames``."""
        recalls = self.result_dict[self.mode + "_recall"]
        frames = len(recalls[KS[0]])
        out: dict = {f"R@{k}": float(np.mean(recalls[k])) if frames else float("nan") for k in KS}
        return {**out, **self._tally.summary(self.AG_all_predicates), "frames": frames}
