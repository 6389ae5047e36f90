"""stack_frames: padding and scaling against a per-image reference; crop batches against
each frame's nodes read from its own rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenellm.data.ag import load_action_genome
from scenellm.data.synth import generate
from scenellm.data.tables import build_tables
from scenellm.features.frames import crop_batch_source, frame_nodes, stack_frames


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


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ag"
    generate(root, seed=3, videos=4, frames=5, size=(64, 48))
    return root, build_tables(load_action_genome(root))


@pytest.mark.parametrize("split", ["train", "test"])
def test_crop_batches_hold_each_frames_nodes_in_the_shuffled_order(synth, split):
    root, tables = synth
    frames, objects = tables["frames"], tables["objects"]
    batch_size, seed, epoch = 3, 5, 1
    batches = list(crop_batch_source(root, frames, objects, split, batch_size, seed)(epoch))
    # reference: the frames in the epoch's order, each frame's nodes from its own rows
    split_frames = frames[frames["split"] == split].sort_values("frame_key")
    split_frames = split_frames.reset_index(drop=True)
    order = torch.randperm(len(split_frames),
                           generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    assert len(batches) == -(-len(split_frames) // batch_size)
    for n, (images, rois, labels) in enumerate(batches):
        rows = split_frames.iloc[order[n * batch_size:(n + 1) * batch_size].tolist()]
        assert images.shape[0] == len(rows)
        expected_rois, expected_labels = [], []
        for b, (_, frame) in enumerate(rows.iterrows()):
            own = objects[objects["frame_key"] == frame["frame_key"]]
            boxes, lab, _ = frame_nodes(frame, own)
            expected_rois.append(np.hstack([np.full((len(boxes), 1), b, np.float32), boxes]))
            expected_labels.append(lab)
        assert torch.equal(rois, torch.from_numpy(np.vstack(expected_rois)))
        assert torch.equal(labels, torch.from_numpy(np.concatenate(expected_labels)))
