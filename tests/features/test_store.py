"""FeatureStore: shard round trips, hashes, atomic and byte-deterministic writes."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from scenellm.features.shard import ShardView, shard_entry
from scenellm.features.store import FeatureStore
from scenellm.io import sha256_file


def make_shard(
    seed: int, frames: int = 3, objects_per_frame: int = 2, dim: int = 8, proposals=False
):
    """A shard for `frames` kept frames: person then objects per frame, one pair per object."""
    g = torch.Generator().manual_seed(seed)
    per = 1 + objects_per_frame
    n = frames * per
    frame_index = torch.arange(frames).repeat_interleave(per)
    obj_index = torch.arange(per).repeat(frames)
    is_obj = obj_index > 0
    person_rows = frame_index * per
    pair_idx = torch.stack([person_rows[is_obj], torch.nonzero(is_obj).squeeze(1)], 1)
    xy = torch.rand(n, 2, generator=g) * 100
    return {
        "obj_feats": torch.randn(n, dim, generator=g),
        "boxes": torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=g) * 50], 1),
        "labels": torch.where(is_obj, torch.randint(2, 37, (n,), generator=g), 1),
        "scores": torch.rand(n, generator=g) if proposals else torch.ones(n),
        "frame_index": frame_index,
        "obj_index": torch.full((n,), -1) if proposals else obj_index,
        "pair_idx": pair_idx,
        "im_idx": frame_index[pair_idx[:, 0]],
        "union_feats": torch.randn(len(pair_idx), dim, generator=g),
    }


def assert_same(view, tensors):
    assert set(view) == set(tensors)
    for name, t in tensors.items():
        assert view[name].dtype == t.dtype and torch.equal(view[name], t), name


def test_round_trip_and_manifest_hashes(tmp_path):
    store = FeatureStore(tmp_path / "store")
    shards = {"001YG.mp4": make_shard(0), "00T1E.mp4": make_shard(1, frames=4)}
    entries = {}
    for video_id, tensors in shards.items():
        sha = store.write_shard(video_id, tensors, {"box_source": "gt", "detector": "small_cnn"})
        assert sha == sha256_file(store.shard_path(video_id))
        entries[video_id] = shard_entry(tensors, sha)
    store.write_manifest("md5:abc", {"name": "small_cnn", "feature_dim": 8}, 8, entries)

    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["data_version"] == "md5:abc"
    assert manifest["feature_dim"] == 8 and manifest["detector_config"]["name"] == "small_cnn"
    assert manifest["shards"]["00T1E.mp4"] == {
        "sha256": hashlib.sha256(store.shard_path("00T1E.mp4").read_bytes()).hexdigest(),
        "num_objects": 12,
        "num_pairs": 8,
        "num_frames": 4,
    }
    assert store.video_ids() == ["001YG.mp4", "00T1E.mp4"] and store.load_manifest() == manifest
    for video_id, view in store.iter_shards():
        assert isinstance(view, ShardView) and view.box_source == "gt"
        assert view.metadata == {"box_source": "gt", "detector": "small_cnn"}
        assert_same(view, shards[video_id])
        assert store.has_valid_shard(video_id)
    assert [v for v, _ in store.iter_shards(["00T1E.mp4"])] == ["00T1E.mp4"]


def test_shard_view_is_lazy(tmp_path):
    store = FeatureStore(tmp_path)
    tensors = make_shard(2)
    store.write_shard("v1", tensors, {"box_source": "gt"})
    view = store.read_shard("v1")
    assert len(view) == 9 and view._loaded == {}
    torch.testing.assert_close(view["boxes"], tensors["boxes"])
    assert list(view._loaded) == ["boxes"]
    assert_same(view.load(), tensors)
    with pytest.raises(KeyError, match="no tensor 'frame_feats'"):
        view["frame_feats"]
    with pytest.raises(FileNotFoundError, match="no shard for 'v2'"):
        store.read_shard("v2")


def test_has_valid_shard_detects_corruption_and_missing_records(tmp_path):
    store = FeatureStore(tmp_path)
    sha = store.write_shard("v1", make_shard(3), {"box_source": "gt"})
    assert not store.has_valid_shard("v1")  # no manifest yet
    assert store.has_valid_shard("v1", expected_sha=sha)
    store.write_manifest("d", {}, 8, {"v1": shard_entry(make_shard(3), sha)})
    assert store.has_valid_shard("v1") and not store.has_valid_shard("v0")
    path = store.shard_path("v1")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # flip one bit of the last tensor's data
    path.write_bytes(bytes(data))
    assert not store.has_valid_shard("v1")
    assert not store.has_valid_shard("v1", expected_sha=sha)


def test_atomic_writes_leave_no_temp_files(tmp_path):
    store = FeatureStore(tmp_path)
    for i in range(3):
        store.write_shard("v1", make_shard(i), {"box_source": "gt"})  # overwrite in place
    store.write_manifest("d", {}, 8, {})
    with pytest.raises(ValueError):
        store.write_shard(
            "v2",
            {**make_shard(0), "labels": torch.ones(9, dtype=torch.int32)},
            {"box_source": "gt"},
        )
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "manifest.json",
        "v1.safetensors",
    ]
    assert_same(store.read_shard("v1"), make_shard(2))


def test_identical_tensors_give_identical_bytes(tmp_path):
    # safetensors alone writes its metadata map in hash order, which differs between calls
    meta = {"box_source": "proposals", "detector": "resnet50", "split": "test", "z": "1", "a": "2"}
    shas, blobs = set(), set()
    for i in range(8):
        store = FeatureStore(tmp_path / f"s{i}")
        shas.add(
            store.write_shard(
                "v", make_shard(5, proposals=True), dict(reversed(meta.items())) if i % 2 else meta
            )
        )
        blobs.add(store.shard_path("v").read_bytes())
    assert len(shas) == 1 and len(blobs) == 1
    blob = blobs.pop()
    header_len = int.from_bytes(blob[:8], "little")
    assert header_len % 8 == 0  # data section stays 8-byte aligned, as safetensors writes it
    assert blob[8:28] == b'{"__metadata__":{"a"'


def test_proposals_with_scores_round_trip(tmp_path):
    store = FeatureStore(tmp_path)
    tensors = make_shard(6, proposals=True)
    store.write_shard("v1", tensors, {"box_source": "proposals"})
    view = store.read_shard("v1")
    assert view.box_source == "proposals"
    assert_same(view, tensors)
    assert (view["obj_index"] == -1).all() and not (view["scores"] == 1).all()


def test_empty_shard_and_extra_tensors(tmp_path):
    store = FeatureStore(tmp_path)
    empty = {k: v[:0] for k, v in make_shard(0).items()}
    store.write_shard("v0", empty, {"box_source": "gt"})
    assert_same(store.read_shard("v0"), empty)
    extra = {**make_shard(1), "frame_feats": torch.zeros(3, 8)}
    store.write_shard("v1", extra, {"box_source": "gt"})
    assert_same(store.read_shard("v1"), extra)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"union_feats": torch.zeros(6, 4)},
            "'union_feats' must be torch.float32 of shape \\(6, 8\\)",
        ),
        ({"pair_idx": torch.tensor([[0, 9]] * 6)}, "must index objects 0..8"),
        ({"boxes": None}, "missing tensors \\['boxes'\\]"),
    ],
)
def test_invalid_shards_are_rejected(tmp_path, change, match):
    tensors = {**make_shard(0), **change}
    tensors = {k: v for k, v in tensors.items() if v is not None}
    with pytest.raises(ValueError, match=match):
        FeatureStore(tmp_path).write_shard("v", tensors, {"box_source": "gt"})


def test_bad_metadata_video_id_and_manifest(tmp_path):
    store = FeatureStore(tmp_path)
    with pytest.raises(ValueError, match="box_source"):
        store.write_shard("v", make_shard(0), {"box_source": "detector"})
    with pytest.raises(ValueError, match="must be strings"):
        store.write_shard("v", make_shard(0), {"box_source": "gt", "epoch": 3})
    with pytest.raises(ValueError, match="not a safe file name"):
        store.write_shard("../v", make_shard(0), {"box_source": "gt"})
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        store.video_ids()
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 0, "shards": {}}))
    with pytest.raises(ValueError, match="format_version 0"):
        store.load_manifest()
