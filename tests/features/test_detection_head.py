"""The centre-point detection head: targets, focal loss, decoding and SGDET's nodes."""

from __future__ import annotations

import math

import numpy as np
import torch

from scenellm.features.detection_head import (
    CenterHead,
    FrameDetections,
    decode,
    focal_loss,
    head_loss,
    make_targets,
    scene_nodes,
)

STRIDE = 8


def test_targets_put_a_unit_peak_at_the_centre_cell_with_size_and_offset():
    box = np.array([[20.0, 10.0, 52.0, 34.0]], np.float32)  # centre (36, 22) → (4.5, 2.75)
    t = make_targets([box], [np.array([3])], (8, 10), STRIDE, num_classes=5)
    assert t.heat.shape == (1, 5, 8, 10)
    assert t.heat[0, 2, 2, 4] == 1.0 and t.heat.max() == 1.0  # class id 3 → channel 2
    assert torch.count_nonzero(t.heat[0, [0, 1, 3, 4]]) == 0
    assert t.index.tolist() == [2 * 10 + 4]
    torch.testing.assert_close(t.size, torch.tensor([[math.log(32.0), math.log(24.0)]]))
    torch.testing.assert_close(t.offset, torch.tensor([[0.5, 0.75]]))
    # the Gaussian falls off with distance: σ_x = 32 / 48, one cell away exp(−1 / 2σ²)
    sigma_x = 32 / (6 * STRIDE)
    assert math.isclose(float(t.heat[0, 2, 2, 5]), math.exp(-1 / (2 * sigma_x**2)), rel_tol=1e-5)


def test_focal_loss_equals_the_formula_written_out():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5))
    target = rng.uniform(0, 0.9, size=logits.shape)
    target[0, 1, 2, 3] = target[1, 2, 0, 0] = 1.0
    p = np.clip(1 / (1 + np.exp(-logits)), 1e-6, 1 - 1e-6)
    pos = target == 1
    expected = -(np.sum((1 - p[pos]) ** 2 * np.log(p[pos]))
                 + np.sum((1 - target[~pos]) ** 4 * p[~pos] ** 2 * np.log(1 - p[~pos]))) / 2
    got = focal_loss(torch.from_numpy(logits), torch.from_numpy(target))
    assert math.isclose(float(got), expected, rel_tol=1e-9)


def perfect_outputs(t, num_classes: int) -> tuple[torch.Tensor, ...]:
    """Head outputs that reproduce the targets exactly at the box cells."""
    b, _, h, w = t.heat.shape
    heat = torch.logit(t.heat.clamp(1e-4, 1 - 1e-4) * 0.999)
    size, offset = torch.zeros(b, 2, h, w), torch.zeros(b, 2, h, w)
    for i, cell in enumerate(t.index.tolist()):
        frame, rest = divmod(cell, h * w)
        y, x = divmod(rest, w)
        size[frame, :, y, x] = t.size[i]
        offset[frame, :, y, x] = t.offset[i]
    return heat, size, offset


def test_decoding_perfect_outputs_returns_the_boxes_best_first():
    boxes = [np.array([[20.0, 10.0, 52.0, 34.0], [100.0, 60.0, 140.0, 110.0]], np.float32),
             np.array([[8.0, 8.0, 30.0, 40.0]], np.float32)]
    labels = [np.array([1, 7]), np.array([4])]
    t = make_targets(boxes, labels, (15, 20), STRIDE, num_classes=9)
    found = decode(perfect_outputs(t, 9), STRIDE, (160, 120), k=2)
    first = {int(lab): box for lab, box in zip(found[0].labels, found[0].boxes, strict=True)}
    np.testing.assert_allclose(first[1], boxes[0][0], atol=1e-3)
    np.testing.assert_allclose(first[7], boxes[0][1], atol=1e-3)
    assert found[1].labels[0] == 4
    np.testing.assert_allclose(found[1].boxes[0], boxes[1][0], atol=1e-3)
    assert found[1].scores[0] > found[1].scores[1]  # best first; the second is background


def test_the_loss_is_lowest_at_the_targets():
    boxes = [np.array([[20.0, 10.0, 52.0, 34.0]], np.float32)]
    t = make_targets(boxes, [np.array([2])], (15, 20), STRIDE, num_classes=4)
    perfect = perfect_outputs(t, 4)
    off = (perfect[0], perfect[1] + 0.3, perfect[2] - 0.2)
    best, worse = head_loss(perfect, t), head_loss(off, t)
    assert float(best["size"]) < 1e-6 and float(best["offset"]) < 1e-6
    assert math.isclose(float(worse["size"]), 0.3, rel_tol=1e-5)
    assert math.isclose(float(worse["offset"]), 0.2, rel_tol=1e-5)


def test_the_head_learns_to_find_a_square_on_a_blank_map():
    torch.manual_seed(0)
    maps = torch.zeros(16, 4, 15, 20)
    boxes, labels = [], []
    rng = np.random.default_rng(1)
    for i in range(16):  # a feature "blob" where the box is; the head must localise it
        x, y = int(rng.integers(2, 16)), int(rng.integers(2, 11))
        maps[i, 0, y - 1:y + 2, x - 1:x + 2] = 1.0
        cx, cy = (x + 0.5) * STRIDE, (y + 0.5) * STRIDE
        boxes.append(np.array([[cx - 12, cy - 12, cx + 12, cy + 12]], np.float32))
        labels.append(np.array([2]))
    head = CenterHead(4, 3, hidden=16, seed=0)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    t = make_targets(boxes, labels, (15, 20), STRIDE, 3)
    for _ in range(150):
        loss = head_loss(head(maps), t)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    found = decode(head(maps), STRIDE, (160, 120), k=1)
    centres = np.array([(f.boxes[0, :2] + f.boxes[0, 2:]) / 2 for f in found])
    truth = np.array([(b[0, :2] + b[0, 2:]) / 2 for b in boxes])
    assert all(f.labels[0] == 2 for f in found)
    assert np.abs(centres - truth).max() < STRIDE / 2


def test_scene_nodes_keep_the_best_person_first_then_the_budget():
    found = FrameDetections(
        boxes=np.arange(24, dtype=np.float32).reshape(6, 4),
        labels=np.array([5, 1, 7, 1, 9, 4]),
        scores=np.array([0.9, 0.01, 0.5, 0.008, 0.3, 0.02], np.float32))
    nodes = scene_nodes(found, person_id=1, budget=2, min_score=0.05)
    assert nodes.labels.tolist() == [1, 5, 7]  # the person although below min_score
    np.testing.assert_array_equal(nodes.boxes[0], found.boxes[1])
    assert scene_nodes(found, 1, budget=10, min_score=0.05).labels.tolist() == [1, 5, 7, 9]
    nobody = FrameDetections(found.boxes[[0, 2]], np.array([5, 7]), found.scores[[0, 2]])
    empty = scene_nodes(nobody, 1, budget=10, min_score=0.0)
    assert len(empty.labels) == 0 and empty.boxes.shape == (0, 4)


def test_frames_of_different_sizes_keep_their_own_map_cells(tmp_path):
    """Real Action Genome mixes frame sizes: each frame's map is cut to its own size, and a
    training batch pads maps bottom/right as frames are padded, so boxes keep their cells."""
    from PIL import Image

    from scenellm.features.backbone_small_cnn import SmallCNN
    from scenellm.stages.detect import feature_maps, pad_maps

    for name, size in (("a.png", (96, 72)), ("b.png", (40, 30))):
        (tmp_path / "frames" / "V.mp4").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (200, 30, 30)).save(tmp_path / "frames" / "V.mp4" / name)
    backbone = SmallCNN(feature_dim=8).eval()
    maps = feature_maps(backbone, tmp_path, ["V.mp4/a.png", "V.mp4/b.png"], "cpu", 2, "maps")
    assert [tuple(m.shape[1:]) for m in maps] == [(9, 12), (4, 5)]  # ⌈size / 8⌉
    batch = pad_maps(maps)
    assert batch.shape == (2, maps[0].shape[0], 9, 12)
    assert torch.count_nonzero(batch[1, :, 4:, :]) == 0
    assert torch.count_nonzero(batch[1, :, :, 5:]) == 0
    torch.testing.assert_close(batch[1, :, :4, :5], maps[1])


def test_maps_cached_on_disk_read_back_bit_for_bit_and_the_file_goes_away(tmp_path):
    """The detect stage keeps the train frames' maps in a file, not in memory: every map
    read back (in any order, of any size) equals the in-memory one exactly, and closing the
    cache deletes the file."""
    from PIL import Image

    from scenellm.features.backbone_small_cnn import SmallCNN
    from scenellm.stages.detect import MapCache, feature_maps

    keys = []
    for i, size in enumerate(((96, 72), (40, 30), (64, 48), (8, 8), (96, 72))):
        (tmp_path / "frames" / "V.mp4").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (40 * i, 30, 200 - 30 * i)).save(
            tmp_path / "frames" / "V.mp4" / f"{i}.png")
        keys.append(f"V.mp4/{i}.png")
    backbone = SmallCNN(feature_dim=8).eval()
    in_memory = feature_maps(backbone, tmp_path, keys, "cpu", 2, "maps")
    path = tmp_path / "maps.cache"
    with MapCache(path) as cache:
        assert feature_maps(backbone, tmp_path, keys, "cpu", 2, "maps", into=cache) is cache
        assert len(cache) == len(keys)
        assert path.stat().st_size == sum(4 * m.numel() for m in in_memory)
        for i in (4, 0, 3, 1, 2, 0):
            assert cache[i].shape == in_memory[i].shape
            assert torch.equal(cache[i], in_memory[i])
    assert not path.exists()


def test_a_tiny_box_at_the_border_stays_a_valid_box():
    """A peak in the last cell with a near-zero size must not collapse to x2 = x1 (the
    detections file refuses such boxes, and the detect stage writes one)."""
    heat = torch.full((1, 2, 15, 20), -9.0)
    heat[0, 1, 14, 19] = 5.0
    size = torch.full((1, 2, 15, 20), math.log(0.2))
    offset = torch.full((1, 2, 15, 20), 0.99)  # centre at the image's last pixel
    box = decode((heat, size, offset), STRIDE, (160, 120), k=1)[0].boxes[0]
    assert box[2] > box[0] and box[3] > box[1]
    assert 0 <= box[0] and box[2] <= 159 and 0 <= box[1] and box[3] <= 119
