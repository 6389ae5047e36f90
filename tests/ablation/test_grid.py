"""params/ablate.yaml: the shipped grids load, cells are ordered, bad files are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenellm.ablation.grid import FULL, cells, load_ablate
from scenellm.config.load import load_params
from scenellm.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def test_every_shipped_cell_is_valid_params():
    config = load_ablate(REPO / "params" / "ablate.yaml")
    for grid in config.grids:
        todo = cells(config, grid)
        assert todo[0].variant == FULL
        assert len(todo) == len(config.grids[grid]) * config.seeds
        for cell in todo:
            params = load_params(REPO / "params", list(cell.overrides))
            assert params.finetune.seed == cell.seed


def test_cells_turn_overrides_into_set_arguments():
    config = load_ablate(REPO / "params" / "ablate.yaml")
    by_name = {c.name: c for c in cells(config, "default", seeds=2)}
    assert by_name["llm-none-seed1"].overrides == ("llm.mode=none", "finetune.seed=1")
    assert by_name["full-seed0"].overrides == ("finetune.seed=0",)


@pytest.mark.parametrize(("text", "message"), [
    ("grids: {g: {no-full: {}}}", "grids: Value error, grid 'g' has no 'full' variant"),
    ("seeds: 0\ngrids: {g: {full: {}}}", "seeds: Input should be greater than or equal to 1"),
    ("grids: {g: {full: {}}}\ngrid: {}", "grid: Extra inputs are not permitted"),
    ("grids: [", "not valid YAML"),
])
def test_a_bad_grid_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "ablate.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_ablate(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_grid_names_the_known_ones():
    config = load_ablate(REPO / "params" / "ablate.yaml")
    with pytest.raises(UserError) as info:
        cells(config, "nope")
    message = str(info.value)
    assert "no grid 'nope'; choose one of: " in message and "\n" not in message
    listed = message.split("choose one of: ")[1].rstrip(".").split(", ")
    assert listed == list(config.grids) and "default" in listed
