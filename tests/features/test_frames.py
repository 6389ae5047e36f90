"""stack_frames: padding and scaling against a per-image reference."""

from __future__ import annotations

import torch

from scenellm.features.frames import stack_frames


def test_stack_frames_pads_bottom_right_and_scales_to_unit_range():
    generator = torch.Generator().manual_seed(0)
    sizes = [(120, 160), (90, 200), (120, 100)]
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator)
              for h, w in sizes]
    batch = stack_frames(images)
    assert batch.shape == (3, 3, 120, 200) and batch.dtype == torch.float32
    for b, image in enumerate(images):
        h, w = image.shape[1:]
        # reference: each image converted on its own
        assert torch.equal(batch[b, :, :h, :w], image.float() / 255.0)
        assert (batch[b, :, h:, :] == 0).all() and (batch[b, :, :, w:] == 0).all()
    assert batch.max() <= 1.0 and batch.min() >= 0.0
