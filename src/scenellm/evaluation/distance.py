"""Recall split by subject–object distance, SPADE's analysis (arXiv 2507.05798, §4.4).

A ground-truth relation is **far** when the centres of its person and object boxes lie more
than a third of the image width apart,

    ‖c_person − c_object‖₂ > W / 3,

and **near** otherwise. Each bucket is scored by its own :class:`SceneGraphEvaluator` fed
the ground truth of that bucket only and the model's full predictions, so a bucket's R@K is
the share of its relations found among all of the frame's top K. A frame contributes to a
bucket only when it holds a relation of that bucket (recall is undefined elsewhere), so the
frames without one are dropped from both the bucket's ground truth and its predictions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from scenellm.evaluation.mean_recall import KS

BUCKETS = ("near", "far")
FAR_FRACTION = 1 / 3


def _centre(box) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64).reshape(-1)[-4:]
    return (b[:2] + b[2:]) / 2


def split_by_distance(gt: list[list[dict]], width: float,
                      fraction: float = FAR_FRACTION) -> dict[str, list[list[dict]]]:
    """STTran ground truth (frames of [person node, object nodes…]) → the same frames per
    bucket, each keeping its person node and the objects of that bucket (possibly none)."""
    out: dict[str, list[list[dict]]] = {b: [] for b in BUCKETS}
    for frame in gt:
        person = next(node for node in frame if "person_bbox" in node)
        centre = _centre(person["person_bbox"])
        far = [node for node in frame if "bbox" in node
               and np.linalg.norm(_centre(node["bbox"]) - centre) > fraction * width]
        near = [node for node in frame if "bbox" in node and not any(node is f for f in far)]
        out["near"].append([person, *near])
        out["far"].append([person, *far])
    return out


def _has_relation(frame: list[dict]) -> bool:
    kinds = ("attention_relationship", "spatial_relationship", "contacting_relationship")
    return any(len(node[k]) for node in frame if "bbox" in node for k in kinds)


def select_frames(pred: dict, keep: list[int]) -> dict:
    """STTran predictions of one video restricted to the frames ``keep`` (ascending),
    renumbered 0..len(keep) − 1."""
    import torch

    new_frame = torch.full((int(pred["boxes"][:, 0].max()) + 1 if len(pred["boxes"]) else 0,),
                           -1, dtype=torch.long)
    new_frame[torch.as_tensor(keep, dtype=torch.long)] = torch.arange(len(keep))
    obj_frame = new_frame[pred["boxes"][:, 0].long()]  # (N,) −1 when dropped
    kept_obj = obj_frame >= 0
    new_obj = torch.cumsum(kept_obj.long(), 0) - 1  # (N,) index among kept objects
    kept_pair = new_frame[pred["im_idx"].long()] >= 0  # (P,)
    out = {k: v[kept_obj] for k, v in pred.items()
           if k in ("labels", "scores", "pred_labels", "pred_scores")}
    boxes = pred["boxes"][kept_obj].clone()
    boxes[:, 0] = obj_frame[kept_obj].to(boxes.dtype)
    out.update({k: pred[k][kept_pair] for k in ("attention_distribution",
                                                  "spatial_distribution",
                                                  "contacting_distribution")})
    return {**out, "boxes": boxes, "im_idx": new_frame[pred["im_idx"].long()][kept_pair],
            "pair_idx": new_obj[pred["pair_idx"].long()][kept_pair]}


class DistanceRecall:
    """R@K per distance bucket over every video given to :meth:`evaluate_scene_graph`.

    Args:
        make_evaluator: builds a fresh :class:`SceneGraphEvaluator` (mode, constraint …).
        fraction: the far threshold as a share of the image width.
    """

    def __init__(self, make_evaluator: Callable[[], object],
                 fraction: float = FAR_FRACTION) -> None:
        self.fraction = fraction
        self.evaluators = {b: make_evaluator() for b in BUCKETS}
        self.frames: dict[str, list[int]] = {b: [] for b in BUCKETS}  # per video, kept

    def evaluate_scene_graph(self, gt: list[list[dict]], pred: dict, width: float) -> None:
        """Score one video (``width``: its image width in the boxes' pixels)."""
        for bucket, frames in split_by_distance(gt, width, self.fraction).items():
            keep = [f for f, frame in enumerate(frames) if _has_relation(frame)]
            self.frames[bucket].append(len(keep))
            if keep:
                self.evaluators[bucket].evaluate_scene_graph([frames[f] for f in keep],
                                                             select_frames(pred, keep))

    def frame_recalls(self, bucket: str) -> dict[int, np.ndarray]:
        """{K: recall of each frame holding a relation of the bucket, in order}."""
        ev = self.evaluators[bucket]
        recalls = ev.result_dict[ev.mode + "_recall"]
        return {k: np.asarray(recalls[k], dtype=np.float64) for k in KS}

    def summary(self) -> dict[str, dict[str, float]]:
        """{bucket: {"R@K": mean over the frames holding such relations, "frames": count}}."""
        out = {}
        for bucket in BUCKETS:
            recalls = self.frame_recalls(bucket)
            n = len(recalls[KS[0]])
            out[bucket] = {f"R@{k}": float(recalls[k].mean()) if n else float("nan")
                           for k in KS}
            out[bucket]["frames"] = n
        return out

    def video_sums(self) -> dict[str, dict[str, list[float]]]:
        """Per bucket, per evaluated video: its frames holding such relations and their
        R@K sums, what a video bootstrap resamples."""
        out = {}
        for bucket in BUCKETS:
            recalls = self.frame_recalls(bucket)
            edges = np.cumsum([0, *self.frames[bucket]])
            spans = list(zip(edges[:-1], edges[1:], strict=True))
            out[bucket] = {"frames": list(self.frames[bucket]),
                           **{f"R@{k}": [float(recalls[k][a:b].sum()) for a, b in spans]
                              for k in KS}}
        return out
