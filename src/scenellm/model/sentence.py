"""The implicit-language sentence a video's scene becomes before the LLM.

SceneLLM (arXiv 2412.11026, §3) turns each frame into a token, "like characters composed of
radicals", and feeds the LLM the sequence of frame tokens. Two readings of what a sentence
holds (``model.language``):

- ``frames``: one token per frame, in order — the paper's frame-level sequence;
- ``objects``: each frame's token followed by the tokens of its objects (the SIA tree's
  leaves, each tagged with its class), so the LLM can follow one object across frames
  and a pair reads its own subject's and object's contextualised states. The paper leaves
  open how the predictor finds "the reasoning about this pair" in frame-level states; this
  reading makes it explicit;
- ``pairs``: each frame's token followed by its (person, object) pair queries, so the LLM
  reads how every relation's geometry evolves, and each pair reads back its own state.

Every token also carries its frame's time stamp (a sinusoid of the frame position), so
tokens of one frame share a time whatever their place in the sentence.
"""

from __future__ import annotations

import torch


def sentence_slots(
    video_of_frame: torch.Tensor,
    frame_pos: torch.Tensor,
    video_of_obj: torch.Tensor | None,
    frame_of_obj: torch.Tensor | None,
    num_videos: int,
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Positions of frame and object tokens in their video's sentence.

    Order within a video: frame 0, its objects (in batch order), frame 1, its objects, ...

    Args:
        video_of_frame, frame_pos: (F,) long; frame f is video_of_frame[f]'s frame_pos[f].
        video_of_obj, frame_of_obj: (N,) long video and global frame of each item after a
            frame (objects or pairs), or None for frame tokens only.
        num_videos: B.

    Returns:
        frame_slot (F,), obj_slot (N,) or None, and L, the longest sentence.
    """
    num_frames = len(video_of_frame)
    if video_of_obj is None:
        lengths = torch.bincount(video_of_frame, minlength=num_videos)
        return frame_pos.clone(), None, int(lengths.max()) if num_frames else 0
    num_objs = len(video_of_obj)
    video = torch.cat([video_of_frame, video_of_obj])  # (F + N,)
    pos = torch.cat([frame_pos, frame_pos[frame_of_obj]])
    kind = torch.cat([torch.zeros(num_frames, dtype=torch.long),
                      torch.ones(num_objs, dtype=torch.long)]).to(video.device)
    index = torch.arange(num_frames + num_objs, device=video.device)
    span = num_frames + num_objs + 1
    key = ((video * (int(pos.max()) + 1) + pos) * 2 + kind) * span + index  # unique, ordered
    order = torch.argsort(key)
    counts = torch.bincount(video, minlength=num_videos)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(video)
    slot[order] = torch.arange(len(order), device=video.device) - start[video[order]]
    return slot[:num_frames], slot[num_frames:], int(counts.max())
