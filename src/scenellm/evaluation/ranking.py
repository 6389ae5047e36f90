"""The evaluator's ranked prediction list: which (subject, predicate, object) cells a
constraint keeps, scored and ranked per frame exactly as ``SceneGraphEvaluator`` ranks them.

The evaluator and the served model (``scenellm.inference``) both call
:func:`rank_predictions`, so a prediction the model returns is the one the evaluator scored,
at the same rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenellm.evaluation.recall import order_in_groups, select_predictions
from scenellm.evaluation.sttran_inputs import read_predictions
from scenellm.evaluation.triplets import PredictionRows, relation_rows


@dataclass(frozen=True)
class RankedPredictions:
    """M predictions in STTran's list order, (M,) arrays: relation ``row`` and ``predicate``
    id, ``sub``/``obj`` nodes (into ``rows.boxes``), ``frame``, ``score`` = subject score x
    object score x predicate score, and ``rank`` (0-based, within the frame). ``order`` (M,)
    lists them frame by frame, best first."""

    row: np.ndarray
    predicate: np.ndarray
    sub: np.ndarray
    obj: np.ndarray
    frame: np.ndarray
    score: np.ndarray
    rank: np.ndarray
    order: np.ndarray


def rank_predictions(rows: PredictionRows, constraint: str,
                     threshold: float = 0.9) -> RankedPredictions:
    """Select the constraint's cells of ``rows`` and rank them within their frames."""
    row, predicate = select_predictions(rows.rel_scores, rows.frame, rows.pair_scores,
                                        constraint, threshold)
    sub, obj, frame = rows.sub[row], rows.obj[row], rows.frame[row]
    # STTran: column_stack((subject score, object score, predicate score)).prod(1)
    score = rows.obj_scores[sub] * rows.obj_scores[obj] * rows.rel_scores[row, predicate]
    order, sorted_rank = order_in_groups(frame, score)
    rank = np.empty_like(sorted_rank)
    rank[order] = sorted_rank  # (M,) rank of each prediction within its frame
    return RankedPredictions(row, predicate, sub, obj, frame, score, rank, order)


def rank_video(pred: dict, n_frames: int, mode: str, constraint: str = "with",
               threshold: float = 0.9) -> tuple[PredictionRows, RankedPredictions]:
    """One video's STTran ``pred`` dict ranked as the evaluator in ``mode`` ranks it
    (object labels and scores from ``pred_labels``/``pred_scores`` unless PREDCLS)."""
    rows = relation_rows([read_predictions(pred, n_frames, use_pred_labels=mode != "predcls")])
    return rows, rank_predictions(rows, constraint, threshold)
