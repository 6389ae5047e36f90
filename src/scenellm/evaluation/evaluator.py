"""``SceneGraphEvaluator``: a vectorized drop-in for STTran's ``BasicSceneGraphEvaluator``.

Same constructor, ``result_dict``, ``reset_result``, ``print_stats`` and
``evaluate_scene_graph(gt, pred)`` (one video per call, STTran formats; see
``scenellm.evaluation.sttran_inputs`` for the field list). Each call reads its video into
arrays; the scoring itself runs over many queued videos at once (``result_dict`` is a property
that scores what is queued), because per-video numpy calls would cost more than the work. Per-frame recalls equal STTran's
(yrcong/STTran ``lib/evaluation_recall.py``) whenever scores have no ties; see
``scenellm.evaluation.recall`` for the tie rule. Unlike STTran, inputs are never modified.

``summary()`` adds the two mean recalls of the literature, both over predicates that occur in
the ground truth:

- ``mR@K`` (TEMPURA): hits and GT counts of predicate p summed over all frames,
  ``mR@K = mean_p  sum_f hits_{f,p} / sum_f count_{f,p}``.
- ``mR@K_frame`` (DSG-DETR / OED, Motifs' per-image mean recall): per frame, the recall of
  each predicate present there, averaged per predicate over those frames, then over
  predicates: ``mR@K = mean_p  mean_{f: count_{f,p} > 0}  hits_{f,p} / count_{f,p}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scenellm.evaluation.recall import (
    Triplets,
    first_match_rank,
    order_in_groups,
    select_predictions,
)
from scenellm.evaluation.sttran_inputs import (
    PERSON,
    VideoPredictions,
    VideoTruth,
    ground_truth_triplets,
    read_ground_truth,
    read_predictions,
    relation_rows,
)

KS = (10, 20, 50, 100)
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
        n = len(self.AG_all_predicates)
        self._gt_count = np.zeros(n)  # (P,) GT triplets per predicate, all frames
        self._hits = np.zeros((len(KS), n))  # (K, P) hit GT triplets per predicate
        self._frames_with = np.zeros(n)  # (P,) frames whose GT holds the predicate
        self._frame_recall_sum = np.zeros((len(KS), n))  # (K, P) sum of per-frame recalls

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
        row, predicate = select_predictions(
            rows.rel_scores, rows.frame, rows.pair_scores, self.constraint, self.semithreshold
        )
        sub, obj, frame = rows.sub[row], rows.obj[row], rows.frame[row]
        # STTran: column_stack((subject score, object score, predicate score)).prod(1)
        relation_score = (
            rows.obj_scores[sub] * rows.obj_scores[obj] * rows.rel_scores[row, predicate]
        )
        order, sorted_rank = order_in_groups(frame, relation_score)
        rank = np.empty_like(sorted_rank)
        rank[order] = sorted_rank  # (M,) rank of each prediction within its frame
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
        self._accumulate(truth.frame, truth.predicate, best, n_frames)

    def _accumulate(
        self, frame: np.ndarray, predicate: np.ndarray, best: np.ndarray, n_frames: int
    ) -> None:
        """Per-frame recalls into ``result_dict``; per-predicate tallies for ``summary``.

        ``frame``, ``predicate``, ``best`` (G,) describe the GT triplets of ``n_frames`` frames.
        """
        n, n_k = len(self.AG_all_predicates), len(KS)
        level = np.searchsorted(KS, best, side="right")  # (G,) hit at KS[i] iff level <= i

        def hits_by(index: np.ndarray, size: int, weights=None) -> np.ndarray:
            """(size, K) sums of ``weights`` over the GT triplets hit at each K."""
            table = np.bincount(index * (n_k + 1) + level, weights, size * (n_k + 1))
            return table.reshape(size, n_k + 1)[:, :n_k].cumsum(1)

        recall = hits_by(frame, n_frames) / np.bincount(frame, minlength=n_frames)[:, None]
        for i, k in enumerate(KS):  # (F, K), as STTran: hits / GT triplets of the frame
            self._result_dict[self.mode + "_recall"][k].extend(recall[:, i].tolist())
        cell = frame * n + predicate  # (G,) the triplet's (frame, predicate) cell
        cell_count = np.bincount(cell, minlength=n_frames * n)  # (F * P,)
        self._gt_count += np.bincount(predicate, minlength=n)
        self._hits += hits_by(predicate, n).T
        self._frames_with += (cell_count.reshape(n_frames, n) > 0).sum(0)
        # sum over frames of hits_fp / count_fp = sum over triplets of hit / count of its cell
        self._frame_recall_sum += hits_by(predicate, n, 1.0 / cell_count[cell]).T

    def print_stats(self) -> None:
        """Print R@K as STTran does."""
        print("======================" + self.mode + "============================")
        for k, v in self.result_dict[self.mode + "_recall"].items():
            print(f"R@{k:d}: {np.mean(v):f}")

    def summary(self) -> dict:
        """R@K, both mean recalls (``mR@K`` TEMPURA, ``mR@K_frame`` DSG-DETR / OED), per-predicate
        recall (TEMPURA-style, predicates present in GT) and the number of frames."""
        recalls = self.result_dict[self.mode + "_recall"]
        frames = len(recalls[KS[0]])
        out: dict = {f"R@{k}": float(np.mean(recalls[k])) if frames else float("nan") for k in KS}
        seen = self._gt_count > 0
        present = self._frames_with > 0
        out["per_predicate"] = {}
        for i, k in enumerate(KS):
            per_predicate = self._hits[i][seen] / self._gt_count[seen]
            per_frame = self._frame_recall_sum[i][present] / self._frames_with[present]
            out[f"mR@{k}"] = float(per_predicate.mean()) if seen.any() else float("nan")
            out[f"mR@{k}_frame"] = float(per_frame.mean()) if present.any() else float("nan")
            names = np.array(self.AG_all_predicates)[seen].tolist()
            out["per_predicate"][k] = dict(zip(names, per_predicate.tolist(), strict=True))
        out["frames"] = frames
        return out
