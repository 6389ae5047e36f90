"""STTran's evaluator inputs: read per video into compact arrays, expanded per batch.

Ground truth ``gt``: one list per frame; ``frame[0] = {'person_bbox': (1, 4) xyxy}``, then one
dict per object: ``'class'`` (STTran id), ``'bbox'`` (4,) xyxy, and kind-local label tensors
``'attention_relationship'``, ``'spatial_relationship'``, ``'contacting_relationship'``.
Node 0 of a frame is the person (class 1). Triplets: person -> object for each attention and
contacting label, **object -> person** for each spatial label.

Predictions ``pred`` (tensors or arrays): ``boxes`` (N, 5) ``[frame, x1, y1, x2, y2]``,
``labels``/``scores`` (predcls) or ``pred_labels``/``pred_scores`` (N,), ``im_idx`` (P,),
``pair_idx`` (P, 2) (subject, object) into ``boxes``, ``attention_distribution`` (P, 3) logits,
``spatial_distribution`` (P, 6) and ``contacting_distribution`` (P, 17) probabilities.

Reading copies what it needs, so the inputs are never written to nor referenced later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERSON = 1  # STTran class id of the person node
_KINDS = ("attention_relationship", "spatial_relationship", "contacting_relationship")


def _numpy(x) -> np.ndarray:
    """A private copy of a tensor or array."""
    return x.detach().cpu().numpy().copy() if hasattr(x, "detach") else np.array(x)


def _boxes(items: list) -> np.ndarray:
    """Stack (4,) or (1, 4) boxes into (n, 4) float64."""
    try:
        return np.asarray(items, dtype=np.float64).reshape(len(items), 4)
    except ValueError:  # mixed shapes
        return np.array([np.ravel(b) for b in items], dtype=np.float64).reshape(len(items), 4)


def _labels(items: list) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate label lists (tensors, arrays, lists or ints): counts (n,), flat (T,)."""
    import torch

    try:  # AG's usual form: one 1-D LongTensor per object and kind
        flat = torch.cat(items).reshape(-1).numpy() if items else np.zeros(0, np.int64)
        return np.fromiter(map(torch.Tensor.numel, items), np.int64, len(items)), flat
    except (TypeError, RuntimeError):  # lists, arrays, ints, 0-d tensors
        pass
    lists = [np.ravel(x.tolist() if hasattr(x, "tolist") else x) for x in items]
    counts = np.array([len(x) for x in lists], dtype=np.int64)
    flat = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
    return counts, flat


def _softmax(logits: np.ndarray) -> np.ndarray:
    """``torch.softmax(logits, dim=1)``: STTran's own op, so the probabilities are bit-identical
    (it is row-wise, so one call for many videos equals one call per video).

    Run on one thread: on a small input, waking the OpenMP pool of a busy machine costs
    milliseconds.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class VideoTruth:
    """One video's GT as read: node ``boxes`` (F + O, 4) (the F persons, then the O objects),
    ``obj_frame`` and ``obj_class`` (O,), label ``counts`` (3, O) per kind and object, and the
    kind-local ``labels`` (T,) in that order."""

    n_frames: int
    boxes: np.ndarray
    obj_frame: np.ndarray
    obj_class: np.ndarray
    counts: np.ndarray
    labels: np.ndarray


def read_ground_truth(gt: list, kind_sizes: tuple[int, int, int]) -> VideoTruth:
    """Read one video's GT; ``kind_sizes`` bound each kind's labels."""
    n_frames = len(gt)
    objects = [obj for frame in gt for obj in frame[1:]]
    boxes = np.concatenate(  # (F + O, 4)
        (_boxes([frame[0]["person_bbox"] for frame in gt]), _boxes([o["bbox"] for o in objects]))
    )
    obj_frame = np.repeat(np.arange(n_frames), [len(frame) - 1 for frame in gt])  # (O,)
    obj_class = np.array([obj["class"] for obj in objects], dtype=np.int64)
    counts, labels = _labels([obj[kind] for kind in _KINDS for obj in objects])
    counts = counts.reshape(3, len(objects))
    bound = np.repeat(kind_sizes, counts.sum(1))  # (T,) size of each label's kind
    if len(labels) and ((labels < 0) | (labels >= bound)).any():
        raise ValueError(f"a relationship label is outside its kind's range 0..{kind_sizes}")
    per_frame = np.bincount(obj_frame, counts.sum(0), minlength=n_frames)
    if n_frames and per_frame.min() == 0:
        raise ValueError(
            f"frame {int(np.argmin(per_frame))} of the video has no ground-truth relationship; "
            "recall is undefined there (STTran divides by zero), so drop such frames first"
        )
    if len(obj_class) and obj_class.min() < 0:
        raise ValueError("a ground-truth object has a negative class id")
    return VideoTruth(n_frames, boxes, obj_frame, obj_class, counts, labels)


@dataclass(frozen=True)
class GroundTruth:
    """GT triplets of a batch, (G,) arrays; ``sub``/``obj`` index the node ``boxes``."""

    frame: np.ndarray
    sub_class: np.ndarray
    predicate: np.ndarray
    obj_class: np.ndarray
    sub: np.ndarray
    obj: np.ndarray
    boxes: np.ndarray


def ground_truth_triplets(
    videos: list[VideoTruth], predicate_maps: tuple[np.ndarray, ...]
) -> GroundTruth:
    """Expand a batch's GT into triplets; frames and nodes are numbered across the batch.

    ``predicate_maps`` turn each kind's local labels into predicate ids.
    """
    n_frames = np.array([v.n_frames for v in videos])
    n_objects = np.array([len(v.obj_class) for v in videos])
    n_nodes = n_frames + n_objects
    obj_start = np.cumsum(n_objects) - n_objects  # (V,) first object of each video
    # Per object (O,): its frame in the batch, and its person's and its own node.
    local_frame = np.concatenate([v.obj_frame for v in videos])
    node_start = np.repeat(np.cumsum(n_nodes) - n_nodes, n_objects)
    frame_of = local_frame + np.repeat(np.cumsum(n_frames) - n_frames, n_objects)
    person_node = node_start + local_frame
    object_node = (
        node_start + np.repeat(n_frames - obj_start, n_objects) + np.arange(len(local_frame))
    )
    # Label slots run (video, kind, object): segment (video, kind) holds that video's objects.
    segment = np.repeat(n_objects, 3)  # (3V,)
    slot_owner = np.arange(segment.sum()) - np.repeat(
        np.cumsum(segment) - segment - np.repeat(obj_start, 3), segment
    )  # (3O,) object of each slot
    slot_kind = np.repeat(np.tile(np.arange(3), len(videos)), segment)  # (3O,)
    counts = np.concatenate([v.counts.ravel() for v in videos])  # (3O,) labels per slot
    owner, kind = np.repeat(slot_owner, counts), np.repeat(slot_kind, counts)  # (G,)
    sizes = np.array([len(m) for m in predicate_maps])
    labels = np.concatenate([v.labels for v in videos])
    predicate = np.concatenate(predicate_maps)[labels + (np.cumsum(sizes) - sizes)[kind]]
    obj_class = np.concatenate([v.obj_class for v in videos])[owner]
    spatial = kind == 1  # spatial triplets run object -> person
    person, thing = person_node[owner], object_node[owner]
    return GroundTruth(
        frame=frame_of[owner],
        sub_class=np.where(spatial, obj_class, PERSON),
        predicate=predicate,
        obj_class=np.where(spatial, PERSON, obj_class),
        sub=np.where(spatial, thing, person),
        obj=np.where(spatial, person, thing),
        boxes=np.concatenate([v.boxes for v in videos]),
    )


@dataclass(frozen=True)
class VideoPredictions:
    """One video's predictions as read (private copies); ``pair_score`` (P,) is subject x
    object score in the scores' own dtype, as STTran's ``no`` constraint computes it."""

    n_frames: int
    im_idx: np.ndarray
    pair: np.ndarray
    attention_logits: np.ndarray
    spatial: np.ndarray
    contacting: np.ndarray
    pair_score: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    obj_scores: np.ndarray


def read_predictions(pred: dict, n_frames: int, use_pred_labels: bool) -> VideoPredictions:
    """Read one video's predictions (``pred_labels``/``pred_scores`` unless predcls)."""
    labels, scores = ("pred_labels", "pred_scores") if use_pred_labels else ("labels", "scores")
    pair = _numpy(pred["pair_idx"]).reshape(-1, 2).astype(np.int64, copy=False)
    classes = _numpy(pred[labels]).reshape(-1).astype(np.int64, copy=False)
    obj_scores = _numpy(pred[scores]).reshape(-1)
    boxes = _numpy(pred["boxes"])[:, 1:].astype(np.float64)
    if len(pair) and (pair.min() < 0 or pair.max() >= min(len(boxes), len(classes))):
        raise ValueError("pred['pair_idx'] points outside pred['boxes']")
    if len(classes) and classes.min() < 0:
        raise ValueError(f"pred['{labels}'] holds a negative class id")
    return VideoPredictions(
        n_frames=n_frames,
        im_idx=_numpy(pred["im_idx"]).reshape(-1),
        pair=pair,
        attention_logits=_numpy(pred["attention_distribution"]),
        spatial=_numpy(pred["spatial_distribution"]),
        contacting=_numpy(pred["contacting_distribution"]),
        pair_score=obj_scores[pair].prod(1).astype(np.float64),
        boxes=boxes,
        classes=classes,
        obj_scores=obj_scores.astype(np.float64),
    )


@dataclass(frozen=True)
class PredictionRows:
    """STTran's relation rows of a batch: 3 per pair (attention, reversed spatial, contacting),
    frame by frame (frames ascending), each frame's rows in STTran's order.

    ``rel_scores`` (R, W) float64 with each kind in its own columns; ``frame``, ``sub`` and
    ``obj`` (R,) with sub/obj indexing ``boxes`` (N, 4); ``pair_scores`` (R,); ``classes`` and
    ``obj_scores`` (N,) float64.
    """

    rel_scores: np.ndarray
    frame: np.ndarray
    sub: np.ndarray
    obj: np.ndarray
    pair_scores: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    obj_scores: np.ndarray


def relation_rows(videos: list[VideoPredictions]) -> PredictionRows:
    """STTran's per-frame ``rels_i`` / ``rel_scores`` for every frame of a batch at once.

    STTran selects a frame's pairs by ``im_idx == frame`` (``im_idx`` may be float), so pairs
    whose ``im_idx`` is no frame of their video are dropped.
    """
    n_pairs = np.array([len(v.pair) for v in videos])
    n_frames = np.array([v.n_frames for v in videos])
    n_boxes = np.array([len(v.boxes) for v in videos])
    im_idx = np.concatenate([v.im_idx for v in videos])
    frame = im_idx.astype(np.int64)
    valid = (frame == im_idx) & (frame >= 0) & (frame < np.repeat(n_frames, n_pairs))
    frame += np.repeat(np.cumsum(n_frames) - n_frames, n_pairs)  # frames across the batch
    keep = np.flatnonzero(valid)[np.argsort(frame[valid], kind="stable")]  # (P,) by frame
    pair = np.concatenate([v.pair for v in videos])
    pair = (pair + np.repeat(np.cumsum(n_boxes) - n_boxes, n_pairs)[:, None])[keep]
    logits = [v.attention_logits for v in videos]
    if len({x.dtype for x in logits}) == 1:
        attention = _softmax(np.concatenate(logits))
    else:
        attention = np.concatenate([_softmax(x) for x in logits])
    spatial = np.concatenate([v.spatial for v in videos])
    kinds = (attention[keep], spatial[keep], np.concatenate([v.contacting for v in videos])[keep])
    # Frame-major rows: the c pairs of a frame, from the batch's pair ``first`` on, take rows
    # 3 * first + [attention 0..c-1, spatial 0..c-1, contacting 0..c-1], STTran's order.
    frame = frame[keep]
    n_rows = 3 * len(keep)
    first = np.searchsorted(frame, frame)  # (P,) first pair of each pair's frame
    count = np.searchsorted(frame, frame, side="right") - first
    attention_row = 2 * first + np.arange(len(keep))
    rows = np.concatenate((attention_row, attention_row + count, attention_row + 2 * count))
    pair_of_row, block_of_row = np.empty((2, n_rows), dtype=np.int64)
    pair_of_row[rows] = np.tile(np.arange(len(keep)), 3)
    block_of_row[rows] = np.repeat(np.arange(3), len(keep))
    widths = [k.shape[1] for k in kinds]
    rel_scores = np.zeros((n_rows, sum(widths)))  # (R, W)
    for block, start in enumerate(np.cumsum([0, *widths[:-1]])):
        rel_scores[
            rows[block * len(keep) : (block + 1) * len(keep)], start : start + widths[block]
        ] = kinds[block]
    reverse = block_of_row == 1  # spatial rows run object -> person
    sub, obj = pair[pair_of_row, 0], pair[pair_of_row, 1]
    return PredictionRows(
        rel_scores=rel_scores,
        frame=np.repeat(frame, 3),
        sub=np.where(reverse, obj, sub),
        obj=np.where(reverse, sub, obj),
        pair_scores=np.concatenate([v.pair_score for v in videos])[keep][pair_of_row],
        boxes=np.concatenate([v.boxes for v in videos]),
        classes=np.concatenate([v.classes for v in videos]),
        obj_scores=np.concatenate([v.obj_scores for v in videos]),
    )
