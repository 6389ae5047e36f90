"""Geometry of (subject, object) box pairs, shared by the predictor's queries and the
motion stream of the ``adaptive`` fusion."""

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
