"""Normalized tables of a filtered AG split: frames, objects, relations (one row each)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd

from scenellm.data import vocab
from scenellm.data.ag import ActionGenome

FRAME_COLUMNS = ["frame_key", "video_id", "frame_name", "split", "frame_index", "width",
                 "height", "person_x1", "person_y1", "person_x2", "person_y2", "num_objects"]
OBJECT_COLUMNS = ["frame_key", "video_id", "split", "object_idx", "class_id", "class_name",
                  "x1", "y1", "x2", "y2", "width", "height", "n_attention", "n_spatial",
                  "n_contacting"]
RELATION_COLUMNS = ["frame_key", "video_id", "split", "object_idx", "kind", "predicate",
                    "predicate_id", "local_id"]
TABLES = ("frames", "objects", "relations")
KIND_OFFSET = {"attention": 0, "spatial": len(vocab.ATTENTION),
               "contacting": len(vocab.ATTENTION) + len(vocab.SPATIAL)}


def build_tables(dataset: ActionGenome, release: bool = False) -> dict[str, pd.DataFrame]:
    """One row per kept frame (per person box), visible object and GT triplet. With
    ``release`` the dataset is emptied video by video as its rows are made (its memory is
    reused for the rows; ``dataset.videos`` is left with empty splits)."""
    frames, objects, relations = [], [], []
    for split, videos in dataset.videos.items():
        for video_id in list(videos):
            video = videos.pop(video_id) if release else videos[video_id]
            for index, frame in enumerate(video):
                w, h = frame.size
                for box in frame.person_boxes:
                    frames.append((frame.key, video_id, frame.key.split("/")[1], split, index,
                                   w, h, *box, len(frame.objects)))
                for obj in frame.objects:
                    objects.append((frame.key, video_id, split, obj.index, obj.class_id,
                                    obj.class_name, *obj.box, w, h, len(obj.attention),
                                    len(obj.spatial), len(obj.contacting)))
                    for kind, labels in (("attention", obj.attention),
                                         ("spatial", obj.spatial),
                                         ("contacting", obj.contacting)):
                        for local in labels:
                            name = vocab.KINDS[kind][local]
                            relations.append((frame.key, video_id, split, obj.index, kind, name,
                                              KIND_OFFSET[kind] + local, local))
    return {
        "frames": pd.DataFrame(frames, columns=FRAME_COLUMNS),
        "objects": pd.DataFrame(objects, columns=OBJECT_COLUMNS),
        "relations": pd.DataFrame(relations, columns=RELATION_COLUMNS),
    }


class PreparedTables(Mapping):
    """The tables of a ``prepare`` output, each read from its parquet file when first asked
    for: a reader that never looks at ``relations``, the largest, never holds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._read: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._read:
            self._read[name] = pd.read_parquet(self._path(name))
        return self._read[name]

    def read_columns(self, name: str, columns: list[str]) -> pd.DataFrame:
        """Some columns of a table, read without holding the rest (or cut from the table
        when it is already held)."""
        if name in self._read:
            return self._read[name][columns]
        return pd.read_parquet(self._path(name), columns=columns)

    def video_rows(self, name: str, video_id: str) -> pd.DataFrame:
        """One video's rows of a table, in table order, without reading the whole table."""
        if name in self._read:
            table = self._read[name]
            return table[table["video_id"] == video_id]
        return pd.read_parquet(self._path(name), filters=[("video_id", "==", video_id)])

    def _path(self, name: str) -> Path:
        if name not in TABLES:
            raise KeyError(name)
        return self.folder / f"{name}.parquet"

    def __iter__(self) -> Iterator[str]:
        return iter(TABLES)

    def __len__(self) -> int:
        return len(TABLES)


def read_tables(folder: Path) -> PreparedTables:
    return PreparedTables(folder)
