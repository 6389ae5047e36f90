"""Our model's batches and labels as STTran's evaluator inputs (fields in
:mod:`scenellm.evaluation.sttran_inputs`), and evaluators over the Action Genome vocabulary.

Ground truth (:func:`sttran_gt`): per frame, node 0 is ``{"person_bbox": (1, 4)}``, then one
dict per object in shard order with ``class``, ``bbox`` (4,) float64 and the three kind-local
label tensors. An object without an attention label gets an **empty** attention tensor: it
contributes no attention triplet (STTran's own code would fail on it; AG always has one).

Predictions (:func:`sttran_predictions`): boxes ``[frame, x1, y1, x2, y2]`` with frames
counted from the video's first, ``labels``/``scores`` (ground truth, score 1) and
``pred_labels``/``pred_scores`` (the model's object head; the person keeps score 1; the
evaluator's mode picks which pair of fields it reads), pairs
and frames local to the video, attention as logits, spatial / contacting as sigmoid
probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from scenellm.data import vocab

if TYPE_CHECKING:
    from scenellm.evaluation.evaluator import SceneGraphEvaluator
    from scenellm.model.batch import VideoBatch

CONSTRAINTS = ("with", "semi", "no")


def ag_evaluator(mode: str, constraint: str = "with", iou_threshold: float = 0.5,
                 semithreshold: float = 0.9) -> SceneGraphEvaluator:
    """A :class:`SceneGraphEvaluator` over Action Genome's classes and predicates."""
    from scenellm.evaluation.evaluator import SceneGraphEvaluator

    return SceneGraphEvaluator(mode, list(vocab.STTRAN_OBJECT_CLASSES), list(vocab.PREDICATES),
                               list(vocab.ATTENTION), list(vocab.SPATIAL),
                               list(vocab.CONTACTING), iou_threshold=iou_threshold,
                               constraint=constraint, semithreshold=semithreshold)


def sttran_gt(shard: Mapping[str, torch.Tensor], labels: Mapping) -> list[list[dict]]:
    """STTran's per-frame ground truth of one video from its feature shard (``boxes``,
    ``labels``, ``frame_index``, ``obj_index``) and its object labels by (frame, object)
    (objects with ``attention``/``spatial``/``contacting`` lists)."""
    boxes, classes = shard["boxes"].numpy(), shard["labels"].tolist()
    frame_index, obj_index = shard["frame_index"].tolist(), shard["obj_index"].tolist()
    frames: list[list[dict]] = [[] for _ in range(max(frame_index) + 1)]
    for row, (f, o) in enumerate(zip(frame_index, obj_index, strict=True)):
        if o == 0:
            frames[f].insert(0, {"person_bbox": boxes[row][None].astype(np.float64)})
            continue
        found = labels[(f, o)]
        frames[f].append({
            "class": classes[row], "bbox": boxes[row].astype(np.float64),
            "attention_relationship": torch.tensor(found.attention[-1:], dtype=torch.long),
            "spatial_relationship": torch.tensor(found.spatial, dtype=torch.long),
            "contacting_relationship": torch.tensor(found.contacting, dtype=torch.long)})
    return frames


def sttran_predictions(batch: VideoBatch, out: Mapping[str, torch.Tensor],
                       b: int) -> dict[str, torch.Tensor]:
    """STTran's ``pred`` dict for video ``b`` of a batch from model outputs
    (``object_logits`` (N, C), ``labels`` (N,), ``attention_logits`` (P, 3),
    ``spatial_logits`` (P, 6), ``contacting_logits`` (P, 17)); ``obj_scores`` (N,), when
    given, are the object scores (SGDET's detector scores) instead of the classifier's."""
    objs = (batch.video_of_obj == b).nonzero().squeeze(1)
    pairs = (batch.video_of_pair == b).nonzero().squeeze(1)
    # the video's first frame, which need not hold a node (an SGDET frame may have none)
    first_obj = int(objs[0])
    first_frame = int((batch.video_of_frame == b).nonzero()[0, 0])
    frame_local = (batch.frame_of_obj[objs] - first_frame).float()
    obj_probs = out["object_logits"][objs].softmax(-1)
    pred_scores = obj_probs.gather(1, out["labels"][objs, None]).squeeze(1)
    pred_scores = torch.where(batch.is_person[objs], torch.ones_like(pred_scores), pred_scores)
    if "obj_scores" in out:  # SGDET: the detector's score of every node, the person's too
        pred_scores = out["obj_scores"][objs].float()
    return {
        "boxes": torch.cat([frame_local[:, None], batch.boxes[objs]], 1).cpu(),
        "labels": batch.labels[objs].cpu(),
        "scores": torch.ones(len(objs)),
        "pred_labels": out["labels"][objs].cpu(),
        "pred_scores": pred_scores.detach().float().cpu(),
        "im_idx": (batch.frame_of_pair[pairs] - first_frame).cpu(),
        "pair_idx": (batch.pair_idx[pairs] - first_obj).cpu(),
        "attention_distribution": out["attention_logits"][pairs].detach().float().cpu(),
        "spatial_distribution": out["spatial_logits"][pairs].detach().float().sigmoid().cpu(),
        "contacting_distribution": out["contacting_logits"][pairs].detach().float()
        .sigmoid().cpu(),
    }
