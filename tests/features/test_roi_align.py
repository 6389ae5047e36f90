"""RoIAlign against a plain-loop reference of torchvision's CPU kernel."""

from __future__ import annotations

import math

import pytest
import torch

from scenellm.features.roi_align import _torchvision_roi_align, roi_align, roi_align_grid_sample


def _bilinear(fmap: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """torchvision's ``bilinear_interpolate`` for one point of a (C, H, W) map."""
    C, H, W = fmap.shape
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return torch.zeros(C, dtype=fmap.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= H - 1:
        y_low = y_high = H - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_low = x_high = W - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * fmap[:, y_low, x_low]
        + hy * lx * fmap[:, y_low, x_high]
        + ly * hx * fmap[:, y_high, x_low]
        + ly * lx * fmap[:, y_high, x_high]
    )


def _reference(features, rois, oh, ow, scale, sr, aligned):
    """Loop per RoI, per bin, per sample point, in float64."""
    features = features.double()
    out = torch.zeros(len(rois), features.shape[1], oh, ow, dtype=torch.float64)
    offset = 0.5 if aligned else 0.0
    for r, (b, x1, y1, x2, y2) in enumerate(rois.double().tolist()):
        x1, y1, x2, y2 = (v * scale - offset for v in (x1, y1, x2, y2))
        w, h = x2 - x1, y2 - y1
        if not aligned:
            w, h = max(w, 1.0), max(h, 1.0)
        bin_h, bin_w = h / oh, w / ow
        for ph in range(oh):
            for pw in range(ow):
                acc = torch.zeros(features.shape[1], dtype=torch.float64)
                for iy in range(sr):
                    y = y1 + ph * bin_h + (iy + 0.5) * bin_h / sr
                    for ix in range(sr):
                        x = x1 + pw * bin_w + (ix + 0.5) * bin_w / sr
                        acc += _bilinear(features[int(b)], y, x)
                out[r, :, ph, pw] = acc / (sr * sr)
    return out


def _random_case(seed: int, B=3, C=4, H=9, W=11, R=7, scale=0.25):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(B, C, H, W, generator=g)
    img_h, img_w = H / scale, W / scale
    # corners may fall outside the image so the zero and clamp rules are exercised
    xs = torch.rand(R, 2, generator=g) * img_w * 1.4 - 0.2 * img_w
    ys = torch.rand(R, 2, generator=g) * img_h * 1.4 - 0.2 * img_h
    batch = torch.randint(0, B, (R,), generator=g).float()
    rois = torch.stack(
        [batch, xs.min(1).values, ys.min(1).values, xs.max(1).values, ys.max(1).values], 1
    )
    return features, rois, scale


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_sample_matches_loop_reference(seed, sampling_ratio, aligned):
    features, rois, scale = _random_case(seed)
    out = roi_align_grid_sample(features, rois, (3, 4), scale, sampling_ratio, aligned)
    ref = _reference(features, rois, 3, 4, scale, sampling_ratio, aligned)
    assert out.shape == (7, 4, 3, 4)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)


def test_tiny_rois_single_image_and_unit_map():
    # sub-cell RoIs (the aligned=False clamp), all RoIs on one image, a 1×1 map
    g = torch.Generator().manual_seed(3)
    features = torch.randn(2, 3, 6, 5, generator=g)
    rois = torch.tensor([[1, 4.0, 4.0, 4.5, 5.0], [1, 0.0, 0.0, 20.0, 24.0], [1, 19, 23, 19, 23]])
    for aligned in (True, False):
        out = roi_align_grid_sample(features, rois, 2, 0.25, 2, aligned)
        ref = _reference(features, rois, 2, 2, 0.25, 2, aligned)
        torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)
    unit = torch.randn(1, 2, 1, 1, generator=g)
    one = torch.tensor([[0, 0.0, 0.0, 8.0, 8.0]])
    torch.testing.assert_close(
        roi_align_grid_sample(unit, one, 2, 1 / 8).double(),
        _reference(unit, one, 2, 2, 1 / 8, 2, True),
        atol=1e-6,
        rtol=0,
    )


def test_constant_map_inside_roi_pools_to_constant():
    features = torch.full((1, 2, 8, 8), 3.0)
    rois = torch.tensor([[0, 4.0, 4.0, 28.0, 20.0]])  # well inside the 32×32 image
    out = roi_align(features, rois, 5, 0.25)
    torch.testing.assert_close(out, torch.full((1, 2, 5, 5), 3.0))


def test_empty_rois_and_bad_sampling_ratio():
    features = torch.randn(1, 3, 4, 4)
    assert roi_align(features, torch.zeros(0, 5), 2, 1.0).shape == (0, 3, 2, 2)
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align(features, torch.zeros(1, 5), 2, 1.0, sampling_ratio=0)


def test_half_precision_maps_keep_pixel_accurate_coordinates():
    # a 1000-px image at stride 16; bf16 rounds 700.5 to 700, so coordinates must stay float32
    g = torch.Generator().manual_seed(7)
    features = torch.randn(1, 4, 40, 63, generator=g)
    rois = torch.tensor([[0, 700.5, 500.5, 930.25, 630.75], [0, 513.0, 1.0, 1003.0, 629.0]])
    out = roi_align(features.bfloat16(), rois, 7, 1 / 16)
    assert out.dtype == torch.bfloat16
    expected = _reference(features.bfloat16().float(), rois, 7, 7, 1 / 16, 2, True)
    torch.testing.assert_close(out.double(), expected, atol=2e-2, rtol=1e-2)


def test_gradient_flows_to_features():
    features, rois, scale = _random_case(4)
    features.requires_grad_(True)
    weights = torch.randn(7, 4, 2, 2, generator=torch.Generator().manual_seed(5))
    (roi_align_grid_sample(features, rois, 2, scale) * weights).sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    # compare with a finite difference at one feature cell that some RoI samples
    idx = tuple(int(i) for i in torch.nonzero(features.grad.abs() > 1e-3)[0])
    eps = 1e-3
    with torch.no_grad():
        bumped = features.detach().clone()
        bumped[idx] += eps
        delta = (roi_align_grid_sample(bumped, rois, 2, scale) * weights).sum() - (
            roi_align_grid_sample(features.detach(), rois, 2, scale) * weights
        ).sum()
    assert math.isclose(delta.item() / eps, features.grad[idx].item(), rel_tol=1e-2, abs_tol=1e-3)


@pytest.mark.skipif(_torchvision_roi_align() is None, reason="torchvision is not importable")
@pytest.mark.parametrize("aligned", [True, False])
def test_matches_torchvision(aligned):
    features, rois, scale = _random_case(6)
    expected = _torchvision_roi_align()(features, rois, (3, 4), scale, 2, aligned)
    out = roi_align_grid_sample(features, rois, (3, 4), scale, 2, aligned)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
