"""Scene graphs of videos as a table: one forward pass per video, then the evaluator's ranked
prediction list (``scenellm.evaluation.ranking``) with names, boxes and scores.

Both the evaluate stage and the packaged model call :func:`scene_graphs` and
:func:`triplet_table`, so what the registry model returns for a video is what the evaluator
scored for it. One video per forward pass: a video's graph never depends on the videos
batched beside it (batching changes the float sums by ~1e-7 and could reorder near ties).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scenellm.data import vocab

if TYPE_CHECKING:
    import torch

    from scenellm.model.batch import VideoBatch
    from scenellm.model.scene_graph_data import SceneGraphData

MODES = ("predcls", "sgcls", "sgdet")
# Column → type of the prediction table (MLflow signature types; "double[]" is a list).
OUTPUT_COLUMNS: dict[str, str] = {
    "video": "string", "mode": "string", "frame": "string", "frame_index": "long",
    "rank": "long", "subject": "string", "object": "string", "object_index": "long",
    "subject_box": "double[]", "object_box": "double[]", "predicate": "string",
    "kind": "string", "score": "double",
}
KIND_OF_PREDICATE = np.array(["attention"] * len(vocab.ATTENTION) + ["spatial"] * len(vocab.SPATIAL)
                             + ["contacting"] * len(vocab.CONTACTING))


def empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object" if t in ("string", "double[]") else
                                      "int64" if t == "long" else "float64")
                         for c, t in OUTPUT_COLUMNS.items()})


class TripletWriter:
    """Prediction tables appended video by video to one parquet file (one row group each),
    so a caller scoring thousands of videos never holds every triplet. Use as a context
    manager; the file is complete when the block ends (atomic publishing is the caller's:
    the evaluate stage writes into its work folder)."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.path = path
        types = {"string": pa.string(), "long": pa.int64(), "double": pa.float64(),
                 "double[]": pa.list_(pa.float64())}
        self.schema = pa.schema([(c, types[t]) for c, t in OUTPUT_COLUMNS.items()])
        self._writer = None
        self.rows = 0

    def __enter__(self) -> TripletWriter:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(self.path, self.schema)
        return self

    def write(self, table: pd.DataFrame) -> None:
        import pyarrow as pa

        self._writer.write_table(pa.Table.from_pandas(table, schema=self.schema,
                                                      preserve_index=False))
        self.rows += len(table)

    def __exit__(self, *exc) -> None:
        self._writer.close()


def read_triplets(path: Path, videos: list[str] | None = None) -> pd.DataFrame:
    """A prediction table written by :class:`TripletWriter` (or ``to_parquet``), only the
    rows of ``videos`` when given."""
    filters = [("video", "in", list(videos))] if videos is not None else None
    return pd.read_parquet(path, filters=filters)


def scene_graphs(model, data: SceneGraphData, videos: Iterable[str], mode: str,
                 device: torch.device) -> Iterator[tuple[VideoBatch, dict[str, torch.Tensor]]]:
    """``(batch, outputs)`` of each video, both on the CPU: the batch holds that video alone,
    the outputs are the model's tensors (logits, ``labels``; in SGDET, where ``data`` holds
    detected nodes, ``obj_scores``) for it."""
    import torch

    for video in videos:
        batch = data.batch([video]).to(device)
        with torch.no_grad():
            # SGDET: the data holds the detector's nodes; the model reads their labels as
            # given (as in PREDCLS), and their scores are the detector's
            out = {k: v.cpu() for k, v in model(batch, mode="predcls" if mode == "sgdet"
                                                  else mode).items()
                   if isinstance(v, torch.Tensor)}
        if mode == "sgdet":
            out["obj_scores"] = data.store.read_shard(video)["scores"]
        yield batch.to(torch.device("cpu")), out


def triplet_table(data: SceneGraphData, batch: VideoBatch, out: dict, mode: str,
                  constraint: str = "with") -> pd.DataFrame:
    """One row per predicted triplet of the batch's single video, frame by frame, each
    frame's triplets best first (``rank`` 0 = best) as the evaluator ranks them.

    ``score`` = subject score x object score x predicate score; ``object_index`` is the
    pair's object (1..n in the frame's annotation order); spatial triplets run object →
    person, as in Action Genome.
    """
    from scenellm.evaluation.ranking import rank_video
    from scenellm.evaluation.sttran_adapters import sttran_predictions

    (video,) = batch.video_ids
    frames = data.video_rows("frames", video).sort_values("frame_index")
    names = frames["frame_name"].to_numpy()
    rows, ranked = rank_video(sttran_predictions(batch, out, 0), len(names), mode, constraint)
    o = ranked.order
    sub, obj, predicate = ranked.sub[o], ranked.obj[o], ranked.predicate[o]
    kind = KIND_OF_PREDICATE[predicate]
    obj_index = data.store.read_shard(video)["obj_index"].numpy()
    classes = np.array(vocab.STTRAN_OBJECT_CLASSES)
    frame = ranked.frame[o]
    return pd.DataFrame({
        "video": video, "mode": mode, "frame": names[frame], "frame_index": frame,
        "rank": ranked.rank[o], "subject": classes[rows.classes[sub]],
        "object": classes[rows.classes[obj]],
        "object_index": obj_index[np.where(kind == "spatial", sub, obj)],
        "subject_box": rows.boxes[sub].tolist(), "object_box": rows.boxes[obj].tolist(),
        "predicate": np.array(vocab.PREDICATES)[predicate], "kind": kind,
        "score": ranked.score[o],
    }, columns=list(OUTPUT_COLUMNS))
