"""Frames from disk for the features stage: crop batches for detector training and the
per-video RoI feature shard."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scenellm.data.vocab import PERSON_ID

BOX = ["x1", "y1", "x2", "y2"]
PERSON_BOX = ["person_x1", "person_y1", "person_x2", "person_y2"]


def load_frame(data_root: Path, frame_key: str) -> torch.Tensor:
    """RGB frame as uint8 (3, H, W)."""
    from PIL import Image

    with Image.open(data_root / "frames" / frame_key) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (H, W, 3) → (3, H, W)


def stack_frames(images: list[torch.Tensor]) -> torch.Tensor:
    """uint8 (3, H_i, W_i) frames (``load_frame``), zero-padded to the largest one
    (bottom/right, so boxes stay valid) → float32 (B, 3, H, W) in [0, 1]."""
    h = max(i.shape[1] for i in images)
    w = max(i.shape[2] for i in images)
    # uint8 copies, then one conversion for the batch: per-image float ops cost an OpenMP
    # barrier each, which dominates on a busy machine (bench/bench_features.py profile)
    batch = torch.zeros(len(images), 3, h, w, dtype=torch.uint8)
    for b, image in enumerate(images):
        batch[b, :, : image.shape[1], : image.shape[2]] = image
    return batch.float().div_(255.0)


def frame_nodes(frame: pd.Series, objs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """Boxes (1+n, 4), labels (1+n,), object indices (1+n,): person first, then objects."""
    objs = objs.sort_values("object_idx")
    boxes = np.vstack([frame[PERSON_BOX].to_numpy(np.float32)[None],
                       objs[BOX].to_numpy(np.float32)])
    labels = np.concatenate([[PERSON_ID], objs["class_id"].to_numpy(np.int64)])
    index = np.concatenate([[0], objs["object_idx"].to_numpy(np.int64)])
    return boxes, labels, index


def crop_batch_source(data_root: Path, frames: pd.DataFrame, objects: pd.DataFrame,
                      split: str, batch_size: int, seed: int):
    """``source(epoch)`` yielding (images, rois, labels) over the split's frames, shuffled
    by a generator seeded with (seed, epoch); frames are read from disk per batch.

    Boxes and labels are held as a few arrays, each frame's objects a slice of them (the
    nodes of :func:`frame_nodes`): a DataFrame per frame would cost kilobytes each, a
    gigabyte over Action Genome's train split."""
    frames = frames[frames["split"] == split].sort_values("frame_key").reset_index(drop=True)
    objs = objects[objects["split"] == split].sort_values(["frame_key", "object_idx"])
    keys = frames["frame_key"].tolist()
    person = frames[PERSON_BOX].to_numpy(np.float32)  # (F, 4)
    boxes = objs[BOX].to_numpy(np.float32)  # (O, 4), frame by frame
    classes = objs["class_id"].to_numpy(np.int64)  # (O,)
    object_keys = objs["frame_key"].to_numpy(object)
    first = np.searchsorted(object_keys, keys, side="left")  # frame i: rows first[i]:end[i]
    end = np.searchsorted(object_keys, keys, side="right")

    def source(epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(frames), generator=gen).tolist()
        for start in range(0, len(order), batch_size):
            images, rois, labels = [], [], []
            for b, i in enumerate(order[start:start + batch_size]):
                images.append(load_frame(data_root, keys[i]))
                nodes = np.vstack([person[i][None], boxes[first[i]:end[i]]])  # (1+n, 4)
                rois.append(np.hstack([np.full((len(nodes), 1), b, np.float32), nodes]))
                labels.append(np.concatenate([[PERSON_ID], classes[first[i]:end[i]]]))
            yield (stack_frames(images), torch.from_numpy(np.vstack(rois)),
                   torch.from_numpy(np.concatenate(labels)))

    return source


def union_boxes(boxes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Smallest box covering both boxes of each pair: (P, 4)."""
    a, b = boxes[pairs[:, 0]], boxes[pairs[:, 1]]
    return np.hstack([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])])


@torch.no_grad()
def video_shard(detector, data_root: Path, frames: pd.DataFrame, objects: pd.DataFrame,
                device: torch.device, batch_size: int) -> tuple[dict, dict]:
    """Feature shard of one video (``frames``/``objects`` rows of that video only)."""
    frames = frames.sort_values("frame_index")
    by_frame = {k: g for k, g in objects.groupby("frame_key")}
    nodes = []
    for _, frame in frames.iterrows():
        b, lab, idx = frame_nodes(frame, by_frame.get(frame["frame_key"], objects.iloc[:0]))
        nodes.append((b, lab, idx, np.ones(len(b), np.float32)))
    return nodes_shard(detector, data_root, frames, nodes, device, batch_size, "gt")


@torch.no_grad()
def nodes_shard(detector, data_root: Path, frames: pd.DataFrame, nodes: list[tuple],
                device: torch.device, batch_size: int, box_source: str) -> tuple[dict, dict]:
    """Feature shard of one video from each frame's nodes ``(boxes (k, 4), STTran ids (k,),
    object indices (k,), scores (k,))``, person first (ground truth, or SGDET detections
    with object index -1); one (person, object) pair per other node. A frame without nodes
    adds none. ``frames`` are the video's rows sorted by ``frame_index``."""
    boxes, labels, obj_index, scores, frame_index, pairs, im_idx = [], [], [], [], [], [], []
    offset = 0
    for (_, frame), (b, lab, idx, score) in zip(frames.iterrows(), nodes, strict=True):
        boxes.append(np.asarray(b, np.float32).reshape(-1, 4))
        labels.append(np.asarray(lab, np.int64))
        obj_index.append(np.asarray(idx, np.int64))
        scores.append(np.asarray(score, np.float32))
        frame_index.append(np.full(len(b), frame["frame_index"], np.int64))
        n_pairs = max(len(b) - 1, 0)
        pairs.append(np.stack([np.full(n_pairs, offset), offset + np.arange(1, n_pairs + 1)], 1))
        im_idx.append(np.full(n_pairs, frame["frame_index"], np.int64))
        offset += len(b)
    boxes_np, frame_np = np.vstack(boxes), np.concatenate(frame_index)
    pairs_np, im_np = np.vstack(pairs).astype(np.int64).reshape(-1, 2), np.concatenate(im_idx)
    unions = union_boxes(boxes_np, pairs_np)

    obj_feats, union_feats = [], []
    keys = frames["frame_key"].tolist()
    positions = frames["frame_index"].to_numpy()
    for start in range(0, len(keys), batch_size):
        chunk = list(range(start, min(start + batch_size, len(keys))))
        fmap = detector.feature_map(stack_frames([load_frame(data_root, keys[i])
                                                  for i in chunk]).to(device))
        first, last = positions[chunk[0]], positions[chunk[-1]]
        for feats, rows_boxes, rows_frame in ((obj_feats, boxes_np, frame_np),
                                              (union_feats, unions, im_np)):
            sel = (rows_frame >= first) & (rows_frame <= last)
            rois = np.hstack([np.searchsorted(positions, rows_frame[sel])[:, None]
                              .astype(np.float32) - start, rows_boxes[sel]])
            feats.append(detector.roi_features(fmap, torch.from_numpy(rois).to(device))
                         .float().cpu())
    tensors = {
        "obj_feats": torch.cat(obj_feats).contiguous(),
        "boxes": torch.from_numpy(boxes_np),
        "labels": torch.from_numpy(np.concatenate(labels)),
        "scores": torch.from_numpy(np.concatenate(scores)),
        "frame_index": torch.from_numpy(frame_np),
        "obj_index": torch.from_numpy(np.concatenate(obj_index)),
        "pair_idx": torch.from_numpy(pairs_np),
        "im_idx": torch.from_numpy(im_np),
        "union_feats": torch.cat(union_feats).contiguous(),
    }
    meta = {"box_source": box_source, "split": str(frames["split"].iloc[0]),
            "width": str(int(frames["width"].iloc[0])),
            "height": str(int(frames["height"].iloc[0]))}
    return tensors, meta
