"""Prediction tables streamed video by video read back as the one table written at once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scenellm.inference.scene_graphs import (
    OUTPUT_COLUMNS,
    TripletWriter,
    empty_table,
    read_triplets,
)


def table(video: str, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "video": video, "mode": "predcls", "frame": [f"{i:06d}.png" for i in range(rows)],
        "frame_index": np.arange(rows), "rank": rng.integers(0, 50, rows),
        "subject": "person", "object": rng.choice(["cup", "bed"], rows),
        "object_index": rng.integers(1, 4, rows),
        "subject_box": rng.uniform(0, 100, (rows, 4)).tolist(),
        "object_box": rng.uniform(0, 100, (rows, 4)).tolist(),
        "predicate": rng.choice(["holding", "in_front_of"], rows),
        "kind": rng.choice(["contacting", "spatial"], rows), "score": rng.uniform(0, 1, rows),
    }, columns=list(OUTPUT_COLUMNS))


def test_streamed_tables_read_back_as_the_table_written_at_once(tmp_path):
    parts = [table("a.mp4", 5, 0), empty_table(), table("b.mp4", 3, 1), table("c.mp4", 4, 2)]
    with TripletWriter(tmp_path / "streamed.parquet") as writer:
        for part in parts:
            writer.write(part)
    assert writer.rows == 12
    whole = pd.concat([p for p in parts if len(p)], ignore_index=True)
    whole.to_parquet(tmp_path / "whole.parquet", index=False)
    streamed = read_triplets(tmp_path / "streamed.parquet")
    pd.testing.assert_frame_equal(streamed, read_triplets(tmp_path / "whole.parquet"))
    assert streamed["subject_box"].iloc[6].tolist() == parts[2]["subject_box"].iloc[1]
    some = read_triplets(tmp_path / "streamed.parquet", ["c.mp4", "a.mp4"])
    pd.testing.assert_frame_equal(
        some, whole[whole["video"].isin(["a.mp4", "c.mp4"])].reset_index(drop=True))
