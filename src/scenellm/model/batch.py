"""The model's input: several videos' objects, pairs and frames concatenated.

A :class:`VideoBatch` concatenates the feature shards of B videos (N objects, P pairs,
F frames in all) and carries the indices that place each object, pair and frame in its
video. :mod:`scenellm.model.scene_graph_data` builds it from a feature store and the
prepared tables.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

IGNORE_INDEX = -100  # attention target of a pair without an attention label (no loss)


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
    attention: torch.Tensor  # (P,) kind-local target, IGNORE_INDEX when unlabelled
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

    def per_frame(self) -> VideoBatch:
        """The same objects and pairs with every frame as its own one-frame video.

        A model run on this view can pass no information between frames (``model.context``
        = ``frame``); outputs stay in this batch's object and pair order.
        """
        num_frames, device = self.num_frames_total, self.frame_of_obj.device
        index = torch.arange(len(self.frame_of_obj), device=device)
        order = torch.argsort(self.frame_of_obj * (len(index) + 1) + index)  # by frame
        rank = torch.empty_like(index)
        rank[order] = index
        counts = torch.bincount(self.frame_of_obj, minlength=num_frames)
        start = torch.cumsum(counts, 0) - counts  # rank of each frame's first object
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(
            video_ids=[f"{self.video_ids[v]}#{t}" for v, t in
                       zip(self.video_of_frame.tolist(), self.frame_pos.tolist(), strict=True)],
            video_of_obj=self.frame_of_obj,
            obj_pos=rank - start[self.frame_of_obj],
            video_of_frame=torch.arange(num_frames, device=device),
            frame_pos=torch.zeros_like(self.frame_pos),
            frame_mask=torch.ones(num_frames, 1, dtype=torch.bool, device=device),
            video_of_pair=self.frame_of_pair,
        )
        return VideoBatch(**values)

    def targets(self) -> dict[str, torch.Tensor]:
        return {"attention": self.attention, "spatial": self.spatial,
                "contacting": self.contacting, "objects": self.labels.clone()}
