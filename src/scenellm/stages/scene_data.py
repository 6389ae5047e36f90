"""Videos as model batches and as STTran evaluator inputs.

A :class:`VideoBatch` concatenates the shards of B videos (N objects, P pairs, F frames in
all) and carries the indices that place each object, pair and frame in its video.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from scenellm.data import vocab
from scenellm.data.tables import read_tables
from scenellm.features.store import FeatureStore


@dataclass
class VideoBatch:
    video_ids: list[str]
    obj_feats: torch.Tensor  # (N, F)
    boxes: torch.Tensor  # (N, 4) xyxy pixels
    boxes_norm: torch.Tensor  # (N, 4) in [0, 1]
    labels: torch.Tensor  # (N,) STTran ids
    is_person: torch.Tensor  # (N,) bool
    frame_of_obj: torch.Tensor  # (N,) global frame id
    video_of_obj: torch.Tensor  # (N,)
    obj_pos: torch.Tensor  # (N,) position of the object within its video
    video_of_frame: torch.Tensor  # (F,)
    frame_pos: torch.Tensor  # (F,) kept-frame index within the video
    frame_mask: torch.Tensor  # (B, T) True = real frame
    pair_idx: torch.Tensor  # (P, 2) into N
    frame_of_pair: torch.Tensor  # (P,) global frame id
    video_of_pair: torch.Tensor  # (P,)
    union_feats: torch.Tensor  # (P, F)
    attention: torch.Tensor  # (P,) kind-local target
    spatial: torch.Tensor  # (P, 6) multi-hot
    contacting: torch.Tensor  # (P, 17) multi-hot

    @property
    def num_videos(self) -> int:
        return len(self.video_ids)

    @property
    def max_frames(self) -> int:
        return self.frame_mask.shape[1]

    @property
    def num_frames_total(self) -> int:
        return len(self.video_of_frame)

    @property
    def max_objects(self) -> int:
        return int(torch.bincount(self.video_of_obj).max())

    def to(self, device: torch.device) -> VideoBatch:
        return VideoBatch(**{f.name: (getattr(self, f.name).to(device)
                                      if isinstance(getattr(self, f.name), torch.Tensor)
                                      else getattr(self, f.name)) for f in fields(self)})

    def targets(self) -> dict[str, torch.Tensor]:
        objects = self.labels.clone()
        return {"attention": self.attention, "spatial": self.spatial,
                "contacting": self.contacting, "objects": objects}


class SceneGraphData:
    """Feature shards joined with the prepared relation tables."""

    def __init__(self, features: Path, prepare: Path) -> None:
        self.store = FeatureStore(features)
        tables = read_tables(prepare)
        self.frames = tables["frames"]
        self.objects = tables["objects"]
        self.manifest = self.store.load_manifest()["shards"]
        self._labels: dict[tuple[str, int, int], tuple[int, list[int], list[int]]] = {}
        index = {(r.video_id, r.frame_key): r.frame_index for r in
                 self.frames[["video_id", "frame_key", "frame_index"]].itertuples()}
        for r in tables["relations"].itertuples():
            key = (r.video_id, index[(r.video_id, r.frame_key)], r.object_idx)
            att, spa, con = self._labels.setdefault(key, (-1, [], []))
            if r.kind == "attention":
                self._labels[key] = (r.local_id, spa, con)
            else:
                (spa if r.kind == "spatial" else con).append(r.local_id)

    def videos(self, split: str) -> list[str]:
        return [v for v in sorted(self.manifest) if self.manifest[v]["split"] == split]

    def batch(self, video_ids: list[str]) -> VideoBatch:
        parts: dict[str, list] = {k: [] for k in (
            "obj_feats", "boxes", "boxes_norm", "labels", "frame_of_obj", "video_of_obj",
            "obj_pos", "video_of_frame", "frame_pos", "pair_idx", "frame_of_pair",
            "video_of_pair", "union_feats", "attention", "spatial", "contacting")}
        n_off = f_off = 0
        lengths = []
        for b, vid in enumerate(video_ids):
            shard = self.store.read_shard(vid)
            meta = shard_size(self.frames, vid)
            n, frames = len(shard["labels"]), int(shard["frame_index"].max()) + 1
            lengths.append(frames)
            scale = torch.tensor([meta[0], meta[1], meta[0], meta[1]], dtype=torch.float32)
            parts["obj_feats"].append(shard["obj_feats"])
            parts["boxes"].append(shard["boxes"])
            parts["boxes_norm"].append(shard["boxes"] / scale)
            parts["labels"].append(shard["labels"])
            parts["frame_of_obj"].append(shard["frame_index"] + f_off)
            parts["video_of_obj"].append(torch.full((n,), b))
            parts["obj_pos"].append(torch.arange(n))
            parts["video_of_frame"].append(torch.full((frames,), b))
            parts["frame_pos"].append(torch.arange(frames))
            parts["pair_idx"].append(shard["pair_idx"] + n_off)
            parts["frame_of_pair"].append(shard["im_idx"] + f_off)
            parts["video_of_pair"].append(torch.full((len(shard["im_idx"]),), b))
            parts["union_feats"].append(shard["union_feats"])
            att, spa, con = self.pair_targets(vid, shard)
            parts["attention"].append(att)
            parts["spatial"].append(spa)
            parts["contacting"].append(con)
            n_off += n
            f_off += frames
        cat = {k: torch.cat(v) for k, v in parts.items()}
        mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
        return VideoBatch(video_ids=list(video_ids), is_person=cat["labels"] == vocab.PERSON_ID,
                          frame_mask=mask, **cat)

    def pair_targets(self, vid: str, shard) -> tuple[torch.Tensor, ...]:
        obj_index = shard["obj_index"]
        pairs, im_idx = shard["pair_idx"], shard["im_idx"]
        att = torch.zeros(len(pairs), dtype=torch.long)
        spa = torch.zeros(len(pairs), len(vocab.SPATIAL))
        con = torch.zeros(len(pairs), len(vocab.CONTACTING))
        for i, (frame, obj) in enumerate(zip(im_idx.tolist(), obj_index[pairs[:, 1]].tolist(),
                                             strict=True)):
            a, s, c = self._labels.get((vid, frame, obj), (0, [], []))
            att[i] = max(a, 0)
            spa[i, s] = 1.0
            con[i, c] = 1.0
        return att, spa, con

    def sttran_gt(self, vid: str) -> list[list[dict]]:
        """STTran's per-frame ground truth of a video (``evaluate_scene_graph``'s ``gt``)."""
        shard = self.store.read_shard(vid)
        boxes, labels = shard["boxes"].numpy(), shard["labels"].tolist()
        frame_index, obj_index = shard["frame_index"].tolist(), shard["obj_index"].tolist()
        frames: list[list[dict]] = [[] for _ in range(max(frame_index) + 1)]
        for row, (f, o) in enumerate(zip(frame_index, obj_index, strict=True)):
            if o == 0:
                frames[f].insert(0, {"person_bbox": boxes[row][None].astype(np.float64)})
                continue
            a, s, c = self._labels[(vid, f, o)]
            frames[f].append({"class": labels[row], "bbox": boxes[row].astype(np.float64),
                              "attention_relationship": torch.tensor([a]),
                              "spatial_relationship": torch.tensor(s, dtype=torch.long),
                              "contacting_relationship": torch.tensor(c, dtype=torch.long)})
        return frames


def shard_size(frames, vid: str) -> tuple[int, int]:
    row = frames[frames["video_id"] == vid].iloc[0]
    return int(row["width"]), int(row["height"])


def sttran_predictions(batch: VideoBatch, out: dict[str, torch.Tensor], b: int,
                       use_pred_labels: bool) -> dict[str, torch.Tensor]:
    """STTran's ``pred`` dict for video ``b`` of a batch from model outputs."""
    objs = (batch.video_of_obj == b).nonzero().squeeze(1)
    pairs = (batch.video_of_pair == b).nonzero().squeeze(1)
    first_obj, first_frame = int(objs[0]), int(batch.frame_of_obj[objs[0]])
    frame_local = (batch.frame_of_obj[objs] - first_frame).float()
    obj_probs = out["object_logits"][objs].softmax(-1)
    pred_scores = obj_probs.gather(1, out["labels"][objs, None]).squeeze(1)
    pred_scores = torch.where(batch.is_person[objs], torch.ones_like(pred_scores), pred_scores)
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
