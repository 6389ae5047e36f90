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
