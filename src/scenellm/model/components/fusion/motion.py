"""A geometric / motion stream of (subject, object) pairs computed from boxes over time: the
second stream the ``adaptive`` fusion mixes in.

Objects are followed to the previous frame of their video by the nearest box centre (class
agnostic, so SGCLS sees no ground-truth label). Per object i with predecessor i' (none in a
video's first frame): velocity v_i = geometry(b_i) − geometry(b_i'), 0 and flag 0 without one.
Per pair (s, o) at frame t:

    m = [pair_geometry(b_s, b_o) (24) ; v_s (9) ; v_o (9) ; flag_s ; flag_o]      (P, 44)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scenellm.model.geometry import PAIR_GEOMETRY_DIM, pair_geometry
from scenellm.model.sia import BOX_GEOMETRY_DIM, box_geometry

MOTION_DIM = PAIR_GEOMETRY_DIM + 2 * BOX_GEOMETRY_DIM + 2


@dataclass
class Tracks:
    """Where the batch's objects sit in time: (N,) global frame and video of each object."""

    frame_of_obj: torch.Tensor
    video_of_obj: torch.Tensor


def previous_object(boxes: torch.Tensor, tracks: Tracks) -> torch.Tensor:
    """(N,) long: index of the object of frame t − 1 of the same video whose box centre is
    nearest to object i's, or −1 when that frame has no object (or i is in the first)."""
    frame, video = tracks.frame_of_obj, tracks.video_of_obj
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2)
    allowed = (frame[None, :] == frame[:, None] - 1) & (video[None, :] == video[:, None])
    dist = torch.cdist(centre.float(), centre.float()).masked_fill(~allowed, float("inf"))
    nearest = dist.argmin(dim=1)  # (N,)
    return torch.where(allowed.any(dim=1), nearest, torch.full_like(nearest, -1))


def pair_motion(boxes: torch.Tensor, pair_idx: torch.Tensor,
                tracks: Tracks | None) -> torch.Tensor:
    """The stream m (P, 44) of the pairs ``pair_idx`` (P, 2); without tracks no velocity."""
    geometry = box_geometry(boxes)  # (N, 9)
    velocity = torch.zeros_like(geometry)
    found = torch.zeros_like(geometry[:, 0])
    if tracks is not None:
        prev = previous_object(boxes, tracks)
        has = prev >= 0
        velocity[has] = geometry[has] - geometry[prev[has]]
        found = has.to(geometry.dtype)
    sub, obj = pair_idx.unbind(dim=1)
    return torch.cat([pair_geometry(boxes[sub], boxes[obj]), velocity[sub], velocity[obj],
                      found[sub, None], found[obj, None]], dim=-1)
