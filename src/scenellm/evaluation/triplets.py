"""A batch of read videos laid out as STTran's triplets: the ground-truth triplets and the
predicted relation rows of every frame at once, frames numbered across the batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenellm.evaluation.sttran_inputs import PERSON, VideoPredictions, VideoTruth


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
    video_pairs = np.array([len(v.pair) for v in videos])
    n_frames = np.array([v.n_frames for v in videos])
    n_boxes = np.array([len(v.boxes) for v in videos])
    im_idx = np.concatenate([v.im_idx for v in videos])
    frame = im_idx.astype(np.int64)
    valid = (frame == im_idx) & (frame >= 0) & (frame < np.repeat(n_frames, video_pairs))
    frame += np.repeat(np.cumsum(n_frames) - n_frames, video_pairs)  # frames across the batch
    if valid.all() and (frame[1:] >= frame[:-1]).all():  # STTran's usual order: no copies
        keep = slice(None)
    else:
        keep = np.flatnonzero(valid)[np.argsort(frame[valid], kind="stable")]  # (P,) by frame
    pair = np.concatenate([v.pair for v in videos])
    pair = (pair + np.repeat(np.cumsum(n_boxes) - n_boxes, video_pairs)[:, None])[keep]
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
    n_pairs, n_rows = len(frame), 3 * len(frame)
    first = np.searchsorted(frame, frame)  # (P,) first pair of each pair's frame
    count = np.searchsorted(frame, frame, side="right") - first
    attention_row = 2 * first + np.arange(n_pairs)
    rows = np.concatenate((attention_row, attention_row + count, attention_row + 2 * count))
    pair_of_row, block_of_row = np.empty((2, n_rows), dtype=np.int64)
    pair_of_row[rows] = np.tile(np.arange(n_pairs), 3)
    block_of_row[rows] = np.repeat(np.arange(3), n_pairs)
    widths = [k.shape[1] for k in kinds]
    rel_scores = np.zeros((n_rows, sum(widths)))  # (R, W)
    for block, start in enumerate(np.cumsum([0, *widths[:-1]])):
        rel_scores[rows[block * n_pairs : (block + 1) * n_pairs], start : start + widths[block]] = (
            kinds[block]
        )
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
