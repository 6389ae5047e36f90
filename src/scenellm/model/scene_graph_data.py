"""Feature shards joined with the prepared relation tables, collated into :class:`VideoBatch`.

Training targets per (person, object) pair, from the object's labels in that frame:

- attention: the object's attention label (AG gives exactly one; of several, the last in
  table order); a pair with **no**
  attention label gets :data:`~scenellm.model.batch.IGNORE_INDEX`, so it adds nothing to the
  attention loss (it is never silently read as ``looking_at``);
- spatial / contacting: multi-hot over the kind's predicates (all zero when unlabelled).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scenellm.data import vocab
from scenellm.data.tables import read_tables
from scenellm.features.store import FeatureStore
from scenellm.model.batch import IGNORE_INDEX, VideoBatch


@dataclass
class ObjectLabels:
    """One object's kind-local labels in one frame, in table order."""

    attention: list[int] = field(default_factory=list)
    spatial: list[int] = field(default_factory=list)
    contacting: list[int] = field(default_factory=list)


LabelIndex = dict[tuple[int, int], ObjectLabels]  # (frame index, object index) → labels
LABEL_KINDS = ("attention", "spatial", "contacting")


def _columns(tables: Mapping, name: str, columns: list[str]) -> pd.DataFrame:
    """``columns`` of one table; a reader with ``read_columns`` does not hold the rest."""
    read = getattr(tables, "read_columns", None)
    return read(name, columns) if read is not None else tables[name][columns]


def _by_video(rows: pd.DataFrame, frame_index: pd.Series, extra: dict) -> dict[str, dict]:
    """Per video, in table order: each row's frame index, object index and ``extra``
    columns, as small integer arrays."""
    keys = pd.MultiIndex.from_arrays([rows["video_id"], rows["frame_key"]])
    columns = {"frame": frame_index.reindex(keys).to_numpy(dtype=np.int32),
               "object_idx": rows["object_idx"].to_numpy(dtype=np.int32),
               **{k: np.asarray(v, dtype=np.int16) for k, v in extra.items()}}
    return {vid: {k: v[idx] for k, v in columns.items()}
            for vid, idx in rows.groupby("video_id", sort=False).indices.items()}


class SceneGraphData:
    """Feature shards joined with the prepared relation tables.

    Memory stays small as the data grows: the labels are kept as a few integer arrays
    ordered by video (12 bytes per relation) and each video's
    :data:`LabelIndex` is built when it is asked for; the objects and relations tables are
    only read in full by callers that ask for them (:meth:`video_rows` reads one video's).
    """

    def __init__(self, features: Path, prepare: Path) -> None:
        self._join(FeatureStore(features), read_tables(prepare))

    @classmethod
    def from_tables(cls, store, tables: Mapping) -> SceneGraphData:
        """Over any ``store`` with ``read_shard(video)`` and ``load_manifest()`` (shards with
        their ``split``), e.g. shards computed on demand for inference."""
        data = cls.__new__(cls)
        data._join(store, tables)
        return data

    def _join(self, store, tables: Mapping) -> None:
        self.store = store
        self.tables = tables
        self.frames = tables["frames"]
        self.manifest = self.store.load_manifest()["shards"]
        self._frame_rows = self.frames.groupby("video_id", sort=False).indices  # table order
        frame_index = (self.frames.drop_duplicates(["video_id", "frame_key"])
                       .set_index(["video_id", "frame_key"])["frame_index"])
        objects = _columns(tables, "objects", ["video_id", "frame_key", "object_idx"])
        relations = _columns(tables, "relations",
                             ["video_id", "frame_key", "object_idx", "kind", "local_id"])
        self._objects = _by_video(objects, frame_index, {})
        self._relations = _by_video(relations, frame_index, {
            "kind": relations["kind"].map({k: i for i, k in enumerate(LABEL_KINDS)}),
            "local_id": relations["local_id"]})

    @property
    def objects(self):
        """The whole objects table (read on first use)."""
        return self.tables["objects"]

    @property
    def relations(self):
        """The whole relations table (read on first use)."""
        return self.tables["relations"]

    def video_rows(self, table: str, vid: str):
        """The rows of ``table`` (``frames``, ``objects`` or ``relations``) for one video, in
        table order, without holding the whole table where it is read from disk."""
        if table == "frames":
            return self.frames.iloc[self._frame_rows.get(vid, [])]
        read = getattr(self.tables, "video_rows", None)
        if read is not None:
            return read(table, vid)
        frame = self.tables[table]
        return frame[frame["video_id"] == vid]

    def videos(self, split: str) -> list[str]:
        return [v for v in sorted(self.manifest) if self.manifest[v]["split"] == split]

    def object_labels(self, vid: str) -> LabelIndex:
        """Labels of every object of video ``vid`` by (frame index, object index)."""
        labels: LabelIndex = {}
        objects = self._objects.get(vid)
        if objects is not None:
            for key in zip(objects["frame"].tolist(), objects["object_idx"].tolist(),
                           strict=True):
                labels[key] = ObjectLabels()
        relations = self._relations.get(vid)
        if relations is not None:
            for f, o, kind, local in zip(*(relations[c].tolist() for c in (
                    "frame", "object_idx", "kind", "local_id")), strict=True):
                found = labels.setdefault((f, o), ObjectLabels())
                getattr(found, LABEL_KINDS[kind]).append(local)
        return labels

    def frame_size(self, vid: str) -> tuple[int, int]:
        row = self.frames.iloc[self._frame_rows[vid][0]]
        return int(row["width"]), int(row["height"])

    def batch(self, video_ids: list[str]) -> VideoBatch:
        parts: dict[str, list] = {k: [] for k in (
            "obj_feats", "boxes", "boxes_norm", "labels", "frame_of_obj", "video_of_obj",
            "obj_pos", "video_of_frame", "frame_pos", "pair_idx", "frame_of_pair",
            "video_of_pair", "union_feats", "attention", "spatial", "contacting")}
        n_off = f_off = 0
        lengths = []
        for b, vid in enumerate(video_ids):
            shard = self.store.read_shard(vid)
            width, height = self.frame_size(vid)
            n, frames = len(shard["labels"]), int(shard["frame_index"].max()) + 1
            lengths.append(frames)
            scale = torch.tensor([width, height, width, height], dtype=torch.float32)
            parts["obj_feats"].append(shard["obj_feats"])
            parts["boxes"].append(shard["boxes"])
            parts["boxes_norm"].append(shard["boxes"] / scale)
            parts["labels"].append(shard["labels"])
            parts["frame_of_obj"].append(shard["frame_index"] + f_off)
            parts["video_of_obj"].append(torch.full((n,), b))
            parts["obj_pos"].append(torch.arange(n))
            parts["video_of_frame"].append(torch.full((frames,), b))
            parts["frame_pos"].append(torch.arange(frames))
            parts["pair_idx"].append(shard["pair_idx"] + n_off)
            parts["frame_of_pair"].append(shard["im_idx"] + f_off)
            parts["video_of_pair"].append(torch.full((len(shard["im_idx"]),), b))
            parts["union_feats"].append(shard["union_feats"])
            att, spa, con = pair_targets(self.object_labels(vid), shard)
            parts["attention"].append(att)
            parts["spatial"].append(spa)
            parts["contacting"].append(con)
            n_off += n
            f_off += frames
        cat = {k: torch.cat(v) for k, v in parts.items()}
        mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]  # (B, T)
        return VideoBatch(video_ids=list(video_ids), is_person=cat["labels"] == vocab.PERSON_ID,
                          frame_mask=mask, **cat)


def pair_targets(labels: LabelIndex, shard) -> tuple[torch.Tensor, ...]:
    """Training targets of a shard's pairs: attention (P,) long, spatial (P, 6) and
    contacting (P, 17) multi-hot (module docstring for unlabelled pairs)."""
    obj_index = shard["obj_index"]
    pairs, im_idx = shard["pair_idx"], shard["im_idx"]
    att = torch.full((len(pairs),), IGNORE_INDEX, dtype=torch.long)
    spa = torch.zeros(len(pairs), len(vocab.SPATIAL))
    con = torch.zeros(len(pairs), len(vocab.CONTACTING))
    for i, key in enumerate(zip(im_idx.tolist(), obj_index[pairs[:, 1]].tolist(), strict=True)):
        found = labels.get(key, ObjectLabels())
        if found.attention:
            att[i] = found.attention[-1]
        spa[i, found.spatial] = 1.0
        con[i, found.contacting] = 1.0
    return att, spa, con
