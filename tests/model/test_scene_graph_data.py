"""SceneGraphData's compact label index against the straightforward dict-of-objects build,
and the per-video readers that keep whole tables out of memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scenellm.data import vocab
from scenellm.data.tables import FRAME_COLUMNS, read_tables
from scenellm.model.scene_graph_data import ObjectLabels, SceneGraphData


class Store:
    def __init__(self, videos):
        self.videos = videos

    def load_manifest(self):
        return {"shards": {v: {"split": "train"} for v in self.videos}}


def random_tables(seed: int = 0, videos: int = 6):
    """Frames (some with two person rows), objects (some without relations), relations in
    a shuffled table order (so "last attention label in table order" is exercised)."""
    rng = np.random.default_rng(seed)
    frames, objects, relations = [], [], []
    for v in range(videos):
        vid = f"V{v:02d}.mp4"
        for index in range(int(rng.integers(1, 6))):
            key = f"{vid}/{index:06d}.png"
            for _ in range(int(rng.integers(1, 3))):  # one row per person box
                frames.append((key, vid, key.split("/")[1], "train", index, 160 + v, 120,
                               0, 0, 10, 10, 0))
            for obj in range(1, int(rng.integers(1, 5))):
                objects.append({"frame_key": key, "video_id": vid, "object_idx": obj})
                if rng.random() < 0.2:
                    continue  # an object with no relation at all
                for kind, names in (("attention", vocab.ATTENTION),
                                    ("spatial", vocab.SPATIAL),
                                    ("contacting", vocab.CONTACTING)):
                    for local in rng.choice(len(names), int(rng.integers(0, 3)),
                                            replace=False):
                        relations.append({"frame_key": key, "video_id": vid,
                                          "object_idx": obj, "kind": kind,
                                          "local_id": int(local)})
    relations = pd.DataFrame(relations).sample(frac=1.0, random_state=seed)
    return {"frames": pd.DataFrame(frames, columns=FRAME_COLUMNS),
            "objects": pd.DataFrame(objects), "relations": relations.reset_index(drop=True)}


def reference_labels(tables) -> dict:
    """The index as a dict of ObjectLabels built row by row (the former implementation)."""
    out: dict = {}
    index = {(r.video_id, r.frame_key): r.frame_index for r in
             tables["frames"][["video_id", "frame_key", "frame_index"]].itertuples()}
    for r in tables["objects"].itertuples():
        out.setdefault(r.video_id, {})[(index[(r.video_id, r.frame_key)], r.object_idx)] = \
            ObjectLabels()
    for r in tables["relations"].itertuples():
        key = (index[(r.video_id, r.frame_key)], r.object_idx)
        getattr(out.setdefault(r.video_id, {}).setdefault(key, ObjectLabels()),
                r.kind).append(r.local_id)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_object_labels_equal_the_row_by_row_index(seed):
    tables = random_tables(seed)
    data = SceneGraphData.from_tables(Store(tables["frames"]["video_id"].unique()), tables)
    expected = reference_labels(tables)
    assert set(expected) == set(tables["objects"]["video_id"])
    for vid, labels in expected.items():
        assert data.object_labels(vid) == labels  # order of multi-labels included
    assert data.object_labels("missing.mp4") == {}


def test_frame_size_and_frame_rows_are_the_videos_own():
    tables = random_tables(3)
    data = SceneGraphData.from_tables(Store([]), tables)
    frames = tables["frames"]
    for vid in frames["video_id"].unique():
        rows = frames[frames["video_id"] == vid]
        pd.testing.assert_frame_equal(data.video_rows("frames", vid), rows)
        assert data.frame_size(vid) == (rows.iloc[0]["width"], rows.iloc[0]["height"])


def test_parquet_tables_give_the_same_rows_without_holding_the_whole_tables(tmp_path):
    tables = random_tables(4)
    for name, frame in tables.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    read = read_tables(tmp_path)
    data = SceneGraphData.from_tables(Store(tables["frames"]["video_id"].unique()), read)
    assert set(read._read) == {"frames"}  # objects and relations read by column only
    in_memory = SceneGraphData.from_tables(Store([]), tables)
    for vid in tables["frames"]["video_id"].unique():
        assert data.object_labels(vid) == in_memory.object_labels(vid)
        for name in ("objects", "relations"):
            pd.testing.assert_frame_equal(
                data.video_rows(name, vid).reset_index(drop=True),
                in_memory.video_rows(name, vid).reset_index(drop=True))
    assert set(read._read) == {"frames"}
