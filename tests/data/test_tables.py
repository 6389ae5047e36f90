"""read_tables: the prepare output's tables, each read when first asked for."""

from __future__ import annotations

import pandas as pd
import pytest

from scenellm.data.tables import TABLES, read_tables


@pytest.fixture
def folder(tmp_path):
    for i, name in enumerate(TABLES):
        pd.DataFrame({"frame_key": [f"v{i}.mp4/00000{j}.png" for j in range(3)],
                      "value": [i, i + 1, i + 2]}).to_parquet(tmp_path / f"{name}.parquet",
                                                               index=False)
    return tmp_path


def test_read_tables_gives_every_table_as_written(folder):
    tables = read_tables(folder)
    assert list(tables) == list(TABLES) and len(tables) == len(TABLES)
    for name in TABLES:
        pd.testing.assert_frame_equal(tables[name], pd.read_parquet(folder / f"{name}.parquet"))
    with pytest.raises(KeyError):
        tables["frame"]


def test_read_tables_reads_a_table_only_when_it_is_asked_for(folder):
    tables = read_tables(folder)
    (folder / "relations.parquet").unlink()  # never read: frames and objects still load
    assert len(tables["frames"]) == len(tables["objects"]) == 3
    with pytest.raises(FileNotFoundError):
        tables["relations"]


def test_building_with_release_gives_the_same_tables_and_empties_the_dataset(tmp_path):
    """prepare builds its tables with ``release=True`` so the annotation objects are freed as
    their rows are made: the tables must be those of the plain build."""
    from scenellm.data.ag import load_action_genome
    from scenellm.data.synth import generate
    from scenellm.data.tables import build_tables

    generate(tmp_path / "data", seed=3, videos=6, frames=4, size=(64, 48))
    kept = build_tables(load_action_genome(tmp_path / "data"))
    dataset = load_action_genome(tmp_path / "data")
    assert sum(len(v) for v in dataset.videos.values()) > 0
    released = build_tables(dataset, release=True)
    for name in TABLES:
        assert len(kept[name]) > 0
        pd.testing.assert_frame_equal(released[name], kept[name])
    assert all(len(videos) == 0 for videos in dataset.videos.values())


def test_column_and_video_reads_do_not_hold_the_table(tmp_path):
    table = pd.DataFrame({"video_id": ["a.mp4", "b.mp4", "a.mp4", "c.mp4"],
                          "value": [0, 1, 2, 3]})
    table.to_parquet(tmp_path / "relations.parquet", index=False)
    tables = read_tables(tmp_path)
    pd.testing.assert_frame_equal(tables.read_columns("relations", ["value"]), table[["value"]])
    assert tables.video_rows("relations", "a.mp4")["value"].tolist() == [0, 2]
    assert tables._read == {}  # nothing cached: the next reader gets the file again
    assert tables.video_rows("relations", "nope.mp4").empty
    assert tables["relations"] is tables["relations"]  # a whole read is kept
    assert tables.video_rows("relations", "c.mp4")["value"].tolist() == [3]


def test_prepare_imports_nothing_midway_after_import_ahead(tmp_path):
    """Modules imported in the middle of the load pin the memory it frees (scenellm.memory):
    after ``import_ahead``, loading, building and writing the tables import no module."""
    import subprocess
    import sys

    from scenellm.data.synth import generate

    generate(tmp_path / "data", seed=3, videos=6, frames=4, size=(64, 48))
    code = """
import sys
from pathlib import Path
from scenellm.data.ag import load_action_genome
from scenellm.data.tables import build_tables
from scenellm.stages.prepare import import_ahead
if sys.argv[3] == "ahead":
    import_ahead()
before = set(sys.modules)
tables = build_tables(load_action_genome(Path(sys.argv[1])), release=True)
for name, df in tables.items():
    df.to_parquet(f"{sys.argv[2]}/{name}.parquet", index=False)
print(" ".join(sorted(set(sys.modules) - before)))
"""
    def imported(mode: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data"),
                              str(tmp_path), mode], capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert any(m.startswith("PIL.") for m in imported("plain"))  # what it guards against
    assert imported("ahead") == []
