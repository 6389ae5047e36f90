"""Geometry of (subject, object) box pairs, shared by the predictor's queries and the
motion stream of the ``adaptive`` fusion, and the same geometry of a pair's object followed
through a window of frames (``model.pair_window``)."""

from __future__ import annotations

import torch

from scenellm.model.sia import BOX_GEOMETRY_DIM, box_geometry

PAIR_GEOMETRY_DIM = 2 * BOX_GEOMETRY_DIM + 6
_EPS = 1e-4  # smallest box side / area, in image-normalised units


def pair_geometry(sub: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
    """Geometry of (subject, object) box pairs, xyxy normalised to [0, 1].

    Returns:
        (P, 24): box_geometry of both boxes, then the deltas (Δcx / w_s, Δcy / h_s,
        log w_o / w_s, log h_o / h_s), IoU and intersection / area_o.
    """
    gs, go = box_geometry(sub), box_geometry(obj)  # (P, 9) each
    ws, hs = gs[:, 6].clamp(min=_EPS), gs[:, 7].clamp(min=_EPS)
    wo, ho = go[:, 6].clamp(min=_EPS), go[:, 7].clamp(min=_EPS)
    iw = (torch.minimum(sub[:, 2], obj[:, 2]) - torch.maximum(sub[:, 0], obj[:, 0])).clamp(min=0)
    ih = (torch.minimum(sub[:, 3], obj[:, 3]) - torch.maximum(sub[:, 1], obj[:, 1])).clamp(min=0)
    inter = iw * ih
    union = (gs[:, 8] + go[:, 8] - inter).clamp(min=_EPS)
    relative = torch.stack(
        [
            (go[:, 4] - gs[:, 4]) / ws,
            (go[:, 5] - gs[:, 5]) / hs,
            torch.log(wo / ws),
            torch.log(ho / hs),
            inter / union,
            inter / go[:, 8].clamp(min=_EPS),
        ],
        dim=-1,
    )  # (P, 6)
    return torch.cat([gs, go, relative], dim=-1)


def window_offsets(window: tuple[int, int]) -> list[int]:
    """The offsets of a frame window ``(lo, hi)``, both ends included, 0 left out."""
    return [offset for offset in range(window[0], window[1] + 1) if offset]


def track_geometry_dim(window: tuple[int, int] | None) -> int:
    """Width of :func:`track_geometry` for ``window`` (0 when there is none)."""
    return len(window_offsets(window)) * (PAIR_GEOMETRY_DIM + 1) if window else 0


def track_geometry(boxes: torch.Tensor, pair_idx: torch.Tensor, track_of_obj: torch.Tensor,
                   video_of_pair: torch.Tensor, frame_pos_of_pair: torch.Tensor,
                   window: tuple[int, int]) -> torch.Tensor:
    """Each pair's object followed through the frames t + k of ``window`` (k ≠ 0).

    An object is followed by ``track_of_obj`` (its class) within its video, as the windowed
    trees of :mod:`scenellm.evaluation.references` do: the pair at frame t + k whose object
    has the same video and class (of several such pairs, the last in batch order). Per
    offset k, with g_k = pair_geometry(person_{t+k}, object_{t+k}) of that pair:

        [present_k ; present_k · g_k]                      (1 + 24 per offset)

    present_k = 0 and zero geometry when no such pair exists.

    Args:
        boxes: (N, 4) xyxy in [0, 1]; pair_idx: (P, 2) long (person, object) into N.
        track_of_obj: (N,) long ≥ 0, the identity objects are followed by.
        video_of_pair: (P,) long; frame_pos_of_pair: (P,) long position of the pair's frame
            in its video.
        window: (lo, hi) frame offsets, lo ≤ 0 ≤ hi.

    Returns:
        (P, track_geometry_dim(window)), offsets in increasing order.
    """
    sub, obj = pair_idx.unbind(dim=1)
    geometry = pair_geometry(boxes[sub], boxes[obj])  # (P, 24)
    frame = frame_pos_of_pair.long()
    span = int(frame.max()) + 1 if len(frame) else 1
    classes = int(track_of_obj.max()) + 1 if len(track_of_obj) else 1
    key = (video_of_pair.long() * classes + track_of_obj[obj].long()) * span + frame  # (P,)
    order = torch.argsort(key, stable=True)
    sorted_key = key[order]
    columns = []
    for offset in window_offsets(window):
        wanted = key + offset  # (video, class, t + k) while t + k stays inside the video
        at = torch.searchsorted(sorted_key, wanted, right=True) - 1  # the last equal key
        found = at.clamp(min=0)
        present = ((frame + offset >= 0) & (frame + offset < span) & (at >= 0)
                   & (sorted_key[found] == wanted))[:, None]  # (P, 1)
        columns += [present.to(geometry.dtype),
                    torch.where(present, geometry[order[found]], torch.zeros_like(geometry))]
    return torch.cat(columns, dim=-1) if columns else geometry[:, :0]
