"""Per-frame loop reference: a transcription of STTran's ``lib/evaluation_recall.py``.

Source: yrcong/STTran ``lib/evaluation_recall.py`` (``BasicSceneGraphEvaluator``,
``evaluate_from_dict``, ``evaluate_recall``, ``_triplet``, ``_compute_pred_matches``), with
``intersect_2d`` / ``argsort_desc`` from ``lib/ults/pytorch_misc.py`` and ``bbox_overlaps`` from
the Cython ``lib/fpn/box_intersections_cpu/bbox.pyx``. It is kept deliberately close to the
original, loops and quirks included, so that the vectorized evaluator can be checked against it.
Departures, all behaviour-preserving:

- ``bbox_overlaps`` is the Cython double loop written in Python (same float64 operations; it
  takes about 5% of the loop's time, a few points more than the compiled original).
- An attention label list is iterated (STTran indexes a tuple with a one-element tensor, which
  only works for exactly one label; AG always has one).
- ``pred_to_gt`` is also turned into per-predicate hit / count tallies (``mean_recall_*``), the
  loop form of the two mean-recall definitions, so ``summary()`` can be checked too
  (``track_mean_recall=False`` skips them, leaving STTran's work alone, for timing).
- ``semithreshold=None`` means 0.9 (STTran would compare against ``None`` and fail); the unused
  ``phrdet`` branch is left out.
- Like STTran, ``evaluate_scene_graph`` replaces ``pred['attention_distribution']`` by its
  softmax; callers pass a shallow copy of ``pred``.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import torch
import torch.nn as nn


def bbox_overlaps(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    """The Cython ``bbox_overlaps`` loop: IoU with the +1-pixel convention, (N, K)."""
    n_boxes, n_query = boxes.shape[0], query_boxes.shape[0]
    overlaps = np.zeros((n_boxes, n_query), dtype=np.float64)
    for k in range(n_query):
        box_area = (query_boxes[k, 2] - query_boxes[k, 0] + 1) * (
            query_boxes[k, 3] - query_boxes[k, 1] + 1
        )
        for n in range(n_boxes):
            iw = min(boxes[n, 2], query_boxes[k, 2]) - max(boxes[n, 0], query_boxes[k, 0]) + 1
            if iw > 0:
                ih = min(boxes[n, 3], query_boxes[k, 3]) - max(boxes[n, 1], query_boxes[k, 1]) + 1
                if ih > 0:
                    ua = float(
                        (boxes[n, 2] - boxes[n, 0] + 1) * (boxes[n, 3] - boxes[n, 1] + 1)
                        + box_area
                        - iw * ih
                    )
                    overlaps[n, k] = iw * ih / ua
    return overlaps


def intersect_2d(x1, x2):
    if x1.shape[1] != x2.shape[1]:
        raise ValueError("Input arrays must have same #columns")
    return (x1[..., None] == x2.T[None, ...]).all(1)


def argsort_desc(scores):
    return np.column_stack(np.unravel_index(np.argsort(-scores.ravel()), scores.shape))


class BasicSceneGraphEvaluator:
    def __init__(
        self,
        mode,
        AG_object_classes,
        AG_all_predicates,
        AG_attention_predicates,
        AG_spatial_predicates,
        AG_contacting_predicates,
        iou_threshold=0.5,
        constraint=False,
        semithreshold=None,
        track_mean_recall=True,
    ):
        self.track_mean_recall = track_mean_recall
        self.result_dict = {}
        self.mode = mode
        self.constraint = constraint
        self.iou_threshold = iou_threshold
        self.AG_object_classes = AG_object_classes
        self.AG_all_predicates = AG_all_predicates
        self.AG_attention_predicates = AG_attention_predicates
        self.AG_spatial_predicates = AG_spatial_predicates
        self.AG_contacting_predicates = AG_contacting_predicates
        self.semithreshold = semithreshold
        self.reset_result()

    def reset_result(self):
        self.result_dict[self.mode + "_recall"] = {10: [], 20: [], 50: [], 100: []}
        n = len(self.AG_all_predicates)
        self.mean_recall_hit = {k: np.zeros(n) for k in (10, 20, 50, 100)}
        self.mean_recall_count = np.zeros(n)
        # DSG-DETR / OED: per predicate, the list of per-frame recalls where it occurs.
        self.frame_recalls = {k: [[] for _ in range(n)] for k in (10, 20, 50, 100)}

    def print_stats(self):
        print("======================" + self.mode + "============================")
        for k, v in self.result_dict[self.mode + "_recall"].items():
            print("R@%i: %f" % (k, np.mean(v)))  # noqa: UP031 (STTran)

    def evaluate_scene_graph(self, gt, pred):
        pred["attention_distribution"] = nn.functional.softmax(
            pred["attention_distribution"], dim=1
        )

        for idx, frame_gt in enumerate(gt):
            gt_boxes = np.zeros([len(frame_gt), 4])
            gt_classes = np.zeros(len(frame_gt))
            gt_relations = []
            human_idx = 0
            gt_classes[human_idx] = 1
            gt_boxes[human_idx] = frame_gt[0]["person_bbox"]
            for m, n in enumerate(frame_gt[1:]):
                gt_boxes[m + 1, :] = n["bbox"]
                gt_classes[m + 1] = n["class"]
                for attention in torch.as_tensor(n["attention_relationship"]).view(-1).tolist():
                    gt_relations.append(
                        [
                            human_idx,
                            m + 1,
                            self.AG_all_predicates.index(self.AG_attention_predicates[attention]),
                        ]
                    )
                for spatial in n["spatial_relationship"].numpy().tolist():
                    gt_relations.append(
                        [
                            m + 1,
                            human_idx,
                            self.AG_all_predicates.index(self.AG_spatial_predicates[spatial]),
                        ]
                    )
                for contact in n["contacting_relationship"].numpy().tolist():
                    gt_relations.append(
                        [
                            human_idx,
                            m + 1,
                            self.AG_all_predicates.index(self.AG_contacting_predicates[contact]),
                        ]
                    )

            gt_entry = {
                "gt_classes": gt_classes,
                "gt_relations": np.array(gt_relations),
                "gt_boxes": gt_boxes,
            }

            # STTran's own expressions, the frame mask recomputed in each, as in the original.
            rels_i = np.concatenate(
                (
                    pred["pair_idx"][pred["im_idx"] == idx].cpu().clone().numpy(),
                    pred["pair_idx"][pred["im_idx"] == idx].cpu().clone().numpy()[:, ::-1],
                    pred["pair_idx"][pred["im_idx"] == idx].cpu().clone().numpy(),
                ),
                axis=0,
            )
            pred_scores_1 = np.concatenate(
                (
                    pred["attention_distribution"][pred["im_idx"] == idx].cpu().numpy(),
                    np.zeros(
                        [
                            pred["pair_idx"][pred["im_idx"] == idx].shape[0],
                            pred["spatial_distribution"].shape[1],
                        ]
                    ),
                    np.zeros(
                        [
                            pred["pair_idx"][pred["im_idx"] == idx].shape[0],
                            pred["contacting_distribution"].shape[1],
                        ]
                    ),
                ),
                axis=1,
            )
            pred_scores_2 = np.concatenate(
                (
                    np.zeros(
                        [
                            pred["pair_idx"][pred["im_idx"] == idx].shape[0],
                            pred["attention_distribution"].shape[1],
                        ]
                    ),
                    pred["spatial_distribution"][pred["im_idx"] == idx].cpu().numpy(),
                    np.zeros(
                        [
                            pred["pair_idx"][pred["im_idx"] == idx].shape[0],
                            pred["contacting_distribution"].shape[1],
                        ]
                    ),
                ),
                axis=1,
            )
            pred_scores_3 = np.concatenate(
                (
                    np.zeros(
                        [
                            pred["pair_idx"][pred["im_idx"] == idx].shape[0],
                            pred["attention_distribution"].shape[1],
                        ]
                    ),
                    np.zeros(
                        [
                            pred["pair_idx"][pred["im_idx"] == idx].shape[0],
                            pred["spatial_distribution"].shape[1],
                        ]
                    ),
                    pred["contacting_distribution"][pred["im_idx"] == idx].cpu().numpy(),
                ),
                axis=1,
            )
            if self.mode == "predcls":
                classes, scores = pred["labels"], pred["scores"]
            else:
                classes, scores = pred["pred_labels"], pred["pred_scores"]
            pred_entry = {
                "pred_boxes": pred["boxes"][:, 1:].cpu().clone().numpy(),
                "pred_classes": classes.cpu().clone().numpy(),
                "pred_rel_inds": rels_i,
                "obj_scores": scores.cpu().clone().numpy(),
                "rel_scores": np.concatenate((pred_scores_1, pred_scores_2, pred_scores_3), axis=0),
            }
            self._evaluate_from_dict(gt_entry, pred_entry)

    def _evaluate_from_dict(self, gt_entry, pred_entry):
        pred_to_gt = evaluate_from_dict(
            gt_entry,
            pred_entry,
            self.mode,
            self.result_dict,
            iou_thresh=self.iou_threshold,
            method=self.constraint,
            threshold=self.semithreshold,
        )
        if not self.track_mean_recall:
            return
        gt_rels = gt_entry["gt_relations"]
        counts = np.bincount(gt_rels[:, 2], minlength=len(self.AG_all_predicates))
        self.mean_recall_count += counts
        for k in self.mean_recall_hit:
            match = reduce(np.union1d, pred_to_gt[:k])
            hits = np.zeros(len(self.AG_all_predicates))
            for g in match:
                hits[gt_rels[int(g), 2]] += 1
            self.mean_recall_hit[k] += hits
            for p in np.nonzero(counts)[0]:
                self.frame_recalls[k][p].append(hits[p] / counts[p])


def evaluate_from_dict(
    gt_entry, pred_entry, mode, result_dict, method=None, threshold=0.9, **kwargs
):
    """STTran's ``evaluate_from_dict``; returns ``pred_to_gt`` for the mean-recall tallies."""
    if threshold is None:
        threshold = 0.9
    gt_rels = gt_entry["gt_relations"]
    gt_boxes = gt_entry["gt_boxes"].astype(float)
    gt_classes = gt_entry["gt_classes"]

    pred_rel_inds = pred_entry["pred_rel_inds"]
    rel_scores = pred_entry["rel_scores"]

    pred_boxes = pred_entry["pred_boxes"].astype(float)
    pred_classes = pred_entry["pred_classes"]
    obj_scores = pred_entry["obj_scores"]

    if method == "semi":
        pred_rels = []
        predicate_scores = []
        for i, j in enumerate(pred_rel_inds):
            if rel_scores[i, 0] + rel_scores[i, 1] > 0:
                pred_rels.append(np.append(j, rel_scores[i].argmax()))
                predicate_scores.append(rel_scores[i].max())
            elif rel_scores[i, 3] + rel_scores[i, 4] > 0:
                for k in np.where(rel_scores[i] > threshold)[0]:
                    pred_rels.append(np.append(j, k))
                    predicate_scores.append(rel_scores[i, k])
            elif rel_scores[i, 9] + rel_scores[i, 10] > 0:
                for k in np.where(rel_scores[i] > threshold)[0]:
                    pred_rels.append(np.append(j, k))
                    predicate_scores.append(rel_scores[i, k])
        pred_rels = np.array(pred_rels)
        predicate_scores = np.array(predicate_scores)
    elif method == "no":
        obj_scores_per_rel = obj_scores[pred_rel_inds].prod(1)
        overall_scores = obj_scores_per_rel[:, None] * rel_scores
        score_inds = argsort_desc(overall_scores)[:100]
        pred_rels = np.column_stack((pred_rel_inds[score_inds[:, 0]], score_inds[:, 1]))
        predicate_scores = rel_scores[score_inds[:, 0], score_inds[:, 1]]
    else:
        pred_rels = np.column_stack((pred_rel_inds, rel_scores.argmax(1)))
        predicate_scores = rel_scores.max(1)

    pred_to_gt, _, _ = evaluate_recall(
        gt_rels,
        gt_boxes,
        gt_classes,
        pred_rels,
        pred_boxes,
        pred_classes,
        predicate_scores,
        obj_scores,
        phrdet=mode == "phrdet",
        **kwargs,
    )

    for k in result_dict[mode + "_recall"]:
        match = reduce(np.union1d, pred_to_gt[:k])
        rec_i = float(len(match)) / float(gt_rels.shape[0])
        result_dict[mode + "_recall"][k].append(rec_i)
    return pred_to_gt


def evaluate_recall(
    gt_rels,
    gt_boxes,
    gt_classes,
    pred_rels,
    pred_boxes,
    pred_classes,
    rel_scores=None,
    cls_scores=None,
    iou_thresh=0.5,
    phrdet=False,
):
    if pred_rels.size == 0:
        return [[]], np.zeros((0, 5)), np.zeros(0)

    num_gt_relations = gt_rels.shape[0]
    assert num_gt_relations != 0

    gt_triplets, gt_triplet_boxes, _ = _triplet(gt_rels[:, 2], gt_rels[:, :2], gt_classes, gt_boxes)
    assert pred_rels[:, :2].max() < pred_classes.shape[0]

    pred_triplets, pred_triplet_boxes, relation_scores = _triplet(
        pred_rels[:, 2], pred_rels[:, :2], pred_classes, pred_boxes, rel_scores, cls_scores
    )

    sorted_scores = relation_scores.prod(1)
    pred_triplets = pred_triplets[sorted_scores.argsort()[::-1], :]
    pred_triplet_boxes = pred_triplet_boxes[sorted_scores.argsort()[::-1], :]
    relation_scores = relation_scores[sorted_scores.argsort()[::-1], :]

    pred_to_gt = _compute_pred_matches(
        gt_triplets, pred_triplets, gt_triplet_boxes, pred_triplet_boxes, iou_thresh, phrdet=phrdet
    )
    pred_5ples = np.column_stack((pred_rels[:, :2], pred_triplets[:, [0, 2, 1]]))
    return pred_to_gt, pred_5ples, relation_scores


def _triplet(predicates, relations, classes, boxes, predicate_scores=None, class_scores=None):
    assert predicates.shape[0] == relations.shape[0]
    sub_ob_classes = classes[relations[:, :2]]
    triplets = np.column_stack((sub_ob_classes[:, 0], predicates, sub_ob_classes[:, 1]))
    triplet_boxes = np.column_stack((boxes[relations[:, 0]], boxes[relations[:, 1]]))
    triplet_scores = None
    if predicate_scores is not None and class_scores is not None:
        triplet_scores = np.column_stack(
            (class_scores[relations[:, 0]], class_scores[relations[:, 1]], predicate_scores)
        )
    return triplets, triplet_boxes, triplet_scores


def _compute_pred_matches(
    gt_triplets, pred_triplets, gt_boxes, pred_boxes, iou_thresh, phrdet=False
):
    keeps = intersect_2d(gt_triplets, pred_triplets)
    gt_has_match = keeps.any(1)
    pred_to_gt = [[] for x in range(pred_boxes.shape[0])]
    for gt_ind, gt_box, keep_inds in zip(
        np.where(gt_has_match)[0], gt_boxes[gt_has_match], keeps[gt_has_match], strict=True
    ):
        boxes = pred_boxes[keep_inds]
        sub_iou = bbox_overlaps(gt_box[None, :4], boxes[:, :4])[0]
        obj_iou = bbox_overlaps(gt_box[None, 4:], boxes[:, 4:])[0]
        inds = (sub_iou >= iou_thresh) & (obj_iou >= iou_thresh)
        for i in np.where(keep_inds)[0][inds]:
            pred_to_gt[i].append(int(gt_ind))
    return pred_to_gt
