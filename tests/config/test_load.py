from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scenellm.config.load import flatten, load_params
from scenellm.config.schema import Params
from scenellm.errors import UserError

PARAMS = Path(__file__).resolve().parents[2] / "params"


def test_repository_params_equal_schema_defaults():
    assert load_params(PARAMS) == Params()


def test_overrides_are_typed_and_validated():
    params = load_params(PARAMS, ["vqvae.codebook_size=64", "ot.epsilon=1e-2",
                                  "model.temporal=none"])
    assert params.vqvae.codebook_size == 64 and params.ot.epsilon == 0.01
    assert params.model.temporal == "none"
    with pytest.raises(UserError, match="vqvae.codebook_size"):
        load_params(PARAMS, ["vqvae.codebook_size=-3"])
    with pytest.raises(UserError, match="model.temporal"):
        load_params(PARAMS, ["model.temporal=lstm"])
    with pytest.raises(UserError, match="section.key=value"):
        load_params(PARAMS, ["epochs=3"])
    with pytest.raises(UserError, match="key=value"):
        load_params(PARAMS, ["vqvae.epochs"])


def test_unknown_key_and_duplicate_section_are_reported(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"vqvae": {"codebok_size": 4}}))
    with pytest.raises(UserError, match="codebok_size"):
        load_params(tmp_path)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"vqvae": {}}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"vqvae": {}}))
    with pytest.raises(UserError, match="defined in two params files"):
        load_params(tmp_path)


def test_flatten_names_every_field():
    flat = flatten(Params())
    assert flat["lora.rank"] == 8 and flat["vqvae.codebook_size"] == 512
    assert len(flat) == sum(len(type(s).model_fields) for s in Params().__dict__.values())


def test_stage_names_of_the_schema_are_the_pipeline_stages():
    from scenellm.config.schema import STAGE_NAMES
    from scenellm.stages.registry import PIPELINE

    assert STAGE_NAMES == PIPELINE


def test_errors_name_the_override_not_the_caller_source():
    """A ``--set`` typo checked later with a caller's source (``search.yaml: fixed``) still
    names the ``--set``; a key the caller added names the caller."""
    from scenellm.config.load import apply_overrides, read_params_dir, validate

    raw = apply_overrides(read_params_dir(PARAMS), ["vqvae.codebok_size=3"])
    with pytest.raises(UserError, match=r"^--set vqvae.codebok_size: unknown key"):
        validate(apply_overrides(raw, {"lora.rank": 4}), source="search.yaml: fixed")
    raw = apply_overrides(read_params_dir(PARAMS), [])
    with pytest.raises(UserError, match=r"^search.yaml: fixed: lora.rank: must be greater"):
        validate(apply_overrides(raw, {"lora.rank": 0}), source="search.yaml: fixed")


def test_file_errors_name_the_file_and_line(tmp_path):
    (tmp_path / "a.yaml").write_text("ot:\n  epsilon: 0.1\n  max_iter: .nan\n")
    with pytest.raises(UserError, match=rf"^{tmp_path}/a.yaml:3: ot.max_iter: must be a finite"):
        load_params(tmp_path)


def test_an_override_replaces_the_file_origin_of_its_value(tmp_path):
    (tmp_path / "a.yaml").write_text("ot:\n  epsilon: 0.1\n")
    with pytest.raises(UserError, match=r"^--set ot.epsilon: must be a finite number"):
        load_params(tmp_path, ["ot.epsilon=.inf"])


@pytest.mark.parametrize("window", ["[1, 3]", "[-3, -1]", "[2, -3]", "[0, 0]"])
def test_pair_window_must_hold_zero_in_increasing_order(window):
    """A window that skips the pair's own frame, or runs backwards, is refused in one line
    naming the key; [-3, 2] and [0, 1] are accepted."""
    with pytest.raises(UserError, match=r"^--set model.pair_window: expected \[lo, hi\] "
                                        r"with lo ≤ 0 ≤ hi") as error:
        load_params(PARAMS, [f"model.pair_window={window}"])
    assert "\n" not in str(error.value)
    assert load_params(PARAMS, ["model.pair_window=[-3, 2]"]).model.pair_window == (-3, 2)
    assert load_params(PARAMS, ["model.pair_window=[0, 1]"]).model.pair_window == (0, 1)
