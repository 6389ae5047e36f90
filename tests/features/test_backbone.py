"""Detector backbones: shapes, seeding, training on crops, torchvision-named checkpoints."""

from __future__ import annotations

import pytest
import torch

from scenellm.device import autocast_context, select_device
from scenellm.features.backbone import DetectorBackbone, build_backbone
from scenellm.features.backbone_resnet import ResNetBackbone
from scenellm.features.backbone_small_cnn import SmallCNN, crop_batches

COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.9]])


def coloured_squares(n: int, seed: int, size: int = 48):
    """n grey noisy images with two squares each; class = the square's colour (0, 1, 2)."""
    g = torch.Generator().manual_seed(seed)
    images = 0.5 + 0.1 * torch.randn(n, 3, size, size, generator=g)
    rois, labels = [], []
    for i in range(n):
        for _ in range(2):
            side = int(torch.randint(size // 5, size // 3, (1,), generator=g))
            x, y = (int(v) for v in torch.randint(0, size - side, (2,), generator=g))
            label = int(torch.randint(0, 3, (1,), generator=g))
            images[i, :, y : y + side, x : x + side] = COLOURS[label, :, None, None]
            rois.append([i, x, y, x + side, y + side])
            labels.append(label)
    images = (images.clamp(0, 1) * 255).to(torch.uint8)
    return images, torch.tensor(rois, dtype=torch.float32), torch.tensor(labels)


SMALL = {"name": "small_cnn", "channels": [16, 32, 32, 32], "feature_dim": 32, "num_classes": 3}


def test_small_cnn_shapes_and_stride():
    model = build_backbone({**SMALL, "seed": 1})
    assert isinstance(model, DetectorBackbone) and model.stride == 8
    images = torch.rand(2, 3, 64, 40)
    fmap = model.feature_map(images)
    assert fmap.shape == (2, model.out_channels, 8, 5) and model.out_channels == 32
    rois = torch.tensor([[0, 0.0, 0.0, 20.0, 30.0], [1, 5.0, 5.0, 39.0, 63.0], [1, 1, 1, 3, 3]])
    pooled = model.pool(fmap, rois)
    assert pooled.shape == (3, 32, 7, 7)
    feats = model.roi_features(fmap, rois)
    assert feats.shape == (3, 32) and (feats >= 0).all()  # ReLU features
    assert model.classify(pooled).shape == (3, 3)
    torch.testing.assert_close(model(images, rois), feats)


def test_small_cnn_seeded_init_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = SmallCNN(seed=4), SmallCNN(seed=4), SmallCNN(seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.head.weight, c.head.weight)


def test_train_on_crops_learns_and_is_deterministic(tmp_path):
    train = coloured_squares(60, seed=0, size=32)
    test = coloured_squares(30, seed=1, size=32)
    runs = []
    for _ in range(2):
        model = build_backbone({**SMALL, "seed": 0})
        records = []
        history = model.train_on_crops(
            crop_batches(*train, batch_size=20, seed=7), epochs=3, lr=3e-3, progress=records.append
        )
        runs.append(model)
    assert records == history and [r["epoch"] for r in history] == [0, 1, 2]
    assert history[0]["num_rois"] == 120 and history[-1]["loss"] < history[0]["loss"]
    result = runs[0].evaluate_on_crops(crop_batches(*test, batch_size=30, seed=0)(0))
    assert result["num_rois"] == 60
    assert result["accuracy"] >= 0.75, result  # chance is 1/3; ~0.9 measured
    for (name, pa), pb in zip(
        runs[0].state_dict().items(), runs[1].state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
    assert not runs[0].training

    # a trained small_cnn reloads from its checkpoint
    path = tmp_path / "small_cnn.pth"
    torch.save(runs[0].state_dict(), path)
    reloaded = build_backbone({**SMALL, "seed": 99, "checkpoint": str(path)})
    images, rois, _ = test
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(images[:4].float() / 255, rois[:8]),
            runs[0](images[:4].float() / 255, rois[:8]),
        )


def test_crop_batches_renumbers_rois_and_covers_every_image():
    images, rois, labels = coloured_squares(7, seed=2)
    source = crop_batches(images, rois, labels, batch_size=3, seed=0)
    seen = []
    for batch_images, batch_rois, batch_labels in source(0):
        assert len(batch_rois) == 2 * len(batch_images) == len(batch_labels)
        for roi, label in zip(batch_rois, batch_labels, strict=True):
            image = batch_images[int(roi[0])]
            x1, y1 = int(roi[1]), int(roi[2])
            colour = image[:, y1 + 1, x1 + 1].float() / 255
            # the renumbered RoI still lands on a square of its label's colour (or one drawn over it)
            seen.append(bool(torch.allclose(colour, COLOURS[label], atol=0.01)))
    assert len(seen) == 14 and sum(seen) >= 12
    assert [len(b[0]) for b in source(0)] == [3, 3, 1]
    first = lambda epoch: next(iter(source(epoch)))[0]  # noqa: E731
    assert torch.equal(first(1), first(1)) and not torch.equal(first(0), first(1))


def test_unknown_backbone_name():
    with pytest.raises(ValueError, match="detector.name must be one of"):
        build_backbone({"name": "vgg"})


def _torchvision_style_state(depth: int, seed: int) -> dict[str, torch.Tensor]:
    """A randomly initialised ResNet state_dict with torchvision's extra fc head."""
    model = ResNetBackbone(depth=depth, seed=seed)
    g = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for k, v in state.items():  # random BN statistics so a wrong mapping shows up
        if k.endswith("running_var"):
            v.copy_(0.5 + torch.rand(v.shape, generator=g))
        elif k.endswith("running_mean"):
            v.copy_(0.1 * torch.randn(v.shape, generator=g))
    state["fc.weight"] = torch.randn(1000, model.feature_dim, generator=g)
    state["fc.bias"] = torch.zeros(1000)
    return state


@pytest.mark.parametrize(
    ("depth", "num_keys", "shapes"),
    [
        (
            18,
            122,
            {
                "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                "layer4.1.conv2.weight": (512, 512, 3, 3),
            },
        ),
        (
            50,
            320,
            {
                "layer1.0.conv3.weight": (256, 64, 1, 1),
                "layer3.5.bn3.running_var": (1024,),
                "layer4.2.conv3.weight": (2048, 512, 1, 1),
                "conv1.weight": (64, 3, 7, 7),
            },
        ),
    ],
)
def test_resnet_parameter_names_match_torchvision(depth, num_keys, shapes):
    # torchvision's resnet{18,50}().state_dict() have 122 / 320 entries, fc included
    state = _torchvision_style_state(depth, seed=0)
    assert len(state) == num_keys
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    if depth == 50:  # v1.5: the stride sits on the 3×3 conv
        block = ResNetBackbone(depth=50).layer2[0]
        assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)


def test_resnet_checkpoint_round_trip(tmp_path):
    state = _torchvision_style_state(18, seed=3)
    path = tmp_path / "resnet18-random.pth"
    torch.save(state, path)
    model = build_backbone({"name": "resnet", "depth": 18, "checkpoint": str(path)})
    assert model.load_report == {"missing": [], "unexpected": ["fc.weight", "fc.bias"]}
    reference = ResNetBackbone(depth=18, seed=3)
    reference.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    assert model.stride == 16 and model.out_channels == 256 and model.feature_dim == 512
    images = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 4.0, 8.0, 30.0, 25.0], [1, 0.0, 0.0, 48.0, 32.0]])
    fmap = model.feature_map(images)
    assert fmap.shape == (2, 256, 2, 3)
    out = model.roi_features(fmap, rois)
    assert out.shape == (2, 512)
    torch.testing.assert_close(out, reference.roi_features(reference.feature_map(images), rois))
    assert not torch.allclose(out, ResNetBackbone(depth=18, seed=4)(images, rois))
    model.train()  # frozen: BatchNorm keeps the checkpoint's running statistics
    assert not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())


def test_resnet_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="detector.checkpoint is not set"):
        build_backbone({"name": "resnet", "depth": 18})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone({"name": "resnet", "checkpoint": str(tmp_path / "missing.pth")})
    torch.save({"classifier.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="holds none of the ResNet parameter names"):
        build_backbone({"name": "resnet", "depth": 18, "checkpoint": str(tmp_path / "other.pth")})
    partial = _torchvision_style_state(18, seed=0)
    del partial["layer4.1.conv2.weight"]
    torch.save({"state_dict": partial}, tmp_path / "wrapped.pth")
    model = build_backbone(
        {"name": "resnet", "depth": 18, "checkpoint": str(tmp_path / "wrapped.pth")}
    )
    assert model.load_report["missing"] == ["layer4.1.conv2.weight"]
    with pytest.raises(ValueError, match="detector.depth"):
        ResNetBackbone(depth=42)


def test_select_device_and_autocast():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            select_device("cuda")
    a = torch.randn(4, 4)
    with autocast_context(torch.device("cpu"), enabled=True):
        assert (a @ a).dtype == torch.float32  # CPU runs in float32 even when enabled


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autocast_bf16_on_cuda():
    device = select_device("cuda")
    a = torch.randn(4, 4, device=device)
    with autocast_context(device, enabled=True):
        assert (a @ a).dtype == torch.bfloat16
    with autocast_context(device, enabled=False):
        assert (a @ a).dtype == torch.float32
