"""RoIAlign (He et al., Mask R-CNN, arXiv 1703.06870) with torchvision's semantics.

``roi_align`` calls ``torchvision.ops.roi_align`` when torchvision imports, and otherwise
``roi_align_grid_sample``, a batched re-implementation on ``F.grid_sample`` that matches it:

- a RoI ``[b, x1, y1, x2, y2]`` in input-image pixels maps to feature-map coordinates
  ``x * spatial_scale - o`` with ``o = 0.5`` when ``aligned`` (the half-pixel shift of
  Detectron2's ROIAlignV2: pixel ``i`` covers ``[i, i + 1)`` and its centre is ``i + 0.5``)
  and ``o = 0`` otherwise, where the RoI size is also clamped to at least 1;
- each of the ``oh × ow`` bins averages ``sampling_ratio²`` bilinear samples at the centres of
  a regular sub-grid: ``y = y1 + (p + (i + 0.5) / sr) · h / oh`` for bin ``p``, sample ``i``;
- a sample with ``y < -1`` or ``y > H`` (same for ``x``) contributes 0; otherwise it is
  clamped to ``[0, H - 1]`` before bilinear interpolation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
import torch.nn.functional as F


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


@cache
def _torchvision_roi_align() -> Callable[..., torch.Tensor] | None:
    """``torchvision.ops.roi_align`` if torchvision imports beside this torch, else None."""
    try:
        from torchvision.ops import roi_align as tv_roi_align
    except Exception:  # a torchvision built for another torch fails with RuntimeError too
        return None
    return tv_roi_align


def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> torch.Tensor:
    """Pool ``rois`` (R, 5) ``[batch_idx, x1, y1, x2, y2]`` from ``features`` (B, C, H, W).

    Returns (R, C, oh, ow) in ``features.dtype``. Uses torchvision's kernel when available,
    else the ``grid_sample`` implementation; both give the same values.
    """
    if sampling_ratio < 1:
        raise ValueError(f"sampling_ratio must be >= 1, got {sampling_ratio}")
    # half-precision maps are pooled in float32: bf16 cannot even hold pixel coordinates
    # (its spacing is 4 px between 512 and 1024)
    dtype = features.dtype
    if dtype in (torch.float16, torch.bfloat16):
        features = features.float()
    tv_roi_align = _torchvision_roi_align()
    if tv_roi_align is not None:
        out = tv_roi_align(
            features,
            rois.to(features.dtype),
            _pair(output_size),
            spatial_scale,
            sampling_ratio,
            aligned,
        )
    else:
        out = roi_align_grid_sample(
            features, rois, output_size, spatial_scale, sampling_ratio, aligned
        )
    return out.to(dtype)


def _sample_coords(
    start: torch.Tensor, size: torch.Tensor, bins: int, sampling_ratio: int
) -> torch.Tensor:
    """Sample positions (R, bins · sampling_ratio) along one axis, bin-major."""
    steps = torch.arange(bins * sampling_ratio, device=start.device, dtype=start.dtype)
    # (p · sr + i + 0.5) / sr = p + (i + 0.5) / sr, in units of one bin
    offsets = (steps + 0.5) / sampling_ratio
    return start[:, None] + offsets[None, :] * (size / bins)[:, None]  # (R, bins·sr)


def _to_grid(coord: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply torchvision's boundary rule; map to grid_sample's align_corners=False range."""
    inside = (coord >= -1.0) & (coord <= length)
    clamped = coord.clamp(0.0, length - 1)
    # align_corners=False puts pixel i's centre at (2i + 1) / length - 1
    return (2.0 * clamped + 1.0) / length - 1.0, inside


def roi_align_grid_sample(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> torch.Tensor:
    """RoIAlign with one ``grid_sample`` call over all RoIs (no per-RoI Python loop).

    Each image's RoIs are laid side by side in a padded grid (B, Rmax·oh·sr, ow·sr, 2), so
    the feature map is never copied per RoI. Differentiable w.r.t. ``features``.
    Returns (R, C, oh, ow).
    """
    if sampling_ratio < 1:
        raise ValueError(f"sampling_ratio must be >= 1, got {sampling_ratio}")
    oh, ow = _pair(output_size)
    B, C, H, W = features.shape
    R = rois.shape[0]
    if R == 0:
        return features.new_zeros((0, C, oh, ow))
    sr = sampling_ratio
    rois = rois.to(device=features.device, dtype=features.dtype)
    batch_idx = rois[:, 0].long()
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, k] * spatial_scale - offset for k in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # torchvision's legacy behaviour: RoIs are at least one cell wide
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)

    gx, inside_x = _to_grid(_sample_coords(x1, roi_w, ow, sr), W)  # (R, ow·sr)
    gy, inside_y = _to_grid(_sample_coords(y1, roi_h, oh, sr), H)  # (R, oh·sr)
    grid = torch.stack(
        (gx[:, None, :].expand(R, oh * sr, ow * sr), gy[:, :, None].expand(R, oh * sr, ow * sr)),
        dim=-1,
    )  # (R, oh·sr, ow·sr, 2)
    inside = inside_y[:, :, None] & inside_x[:, None, :]  # (R, oh·sr, ow·sr)

    # rank of each RoI among the RoIs of its image, to place it in the padded grid
    counts = torch.bincount(batch_idx, minlength=B)
    first = torch.cumsum(counts, 0) - counts
    order = torch.argsort(batch_idx, stable=True)
    rank = torch.empty_like(batch_idx)
    rank[order] = torch.arange(R, device=rank.device) - first[batch_idx[order]]
    r_max = int(counts.max())
    padded = grid.new_zeros((B, r_max, oh * sr, ow * sr, 2))
    padded[batch_idx, rank] = grid
    sampled = F.grid_sample(
        features,
        padded.reshape(B, r_max * oh * sr, ow * sr, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # (B, C, Rmax·oh·sr, ow·sr)
    sampled = sampled.reshape(B, C, r_max, oh * sr, ow * sr)[batch_idx, :, rank]
    sampled = sampled * inside[:, None].to(sampled.dtype)  # (R, C, oh·sr, ow·sr)
    return sampled.reshape(R, C, oh, sr, ow, sr).mean(dim=(3, 5))  # (R, C, oh, ow)
