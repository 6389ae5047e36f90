"""The study definition: search.yaml parsing, validation against params, trial params."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from scenellm.config.load import load_params, read_params_dir
from scenellm.errors import UserError
from scenellm.search.space import SearchConfig, load_search

REPO = Path(__file__).resolve().parents[2]
SPACE = {
    "vqvae.codebook_size": {"type": "categorical", "choices": [64, 128]},
    "lora.rank": {"type": "categorical", "choices": [4, 8]},
    "ot.epsilon": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
    "ot.num_scene_tokens": {"type": "int", "low": 8, "high": 32, "step": 8},
}


def config(**changes) -> SearchConfig:
    return SearchConfig.model_validate({"space": SPACE, **changes})


@pytest.fixture(scope="module")
def raw() -> dict:
    return read_params_dir(REPO / "params")


def test_repository_search_yaml_covers_the_issue_keys(raw):
    search = load_search(REPO / "params" / "search.yaml")
    search.check(raw)
    space = search.space
    assert space["vqvae.codebook_size"].type == "categorical"
    assert space["lora.rank"].type == "categorical"
    assert space["ot.epsilon"].type == "float" and space["ot.epsilon"].log
    assert {"ot.num_scene_tokens", "ot.max_iter"} <= set(space)
    assert search.objective.metric == "val_predcls_R@20"
    assert search.objective.direction == "maximize"
    # M < K for every combination the space allows
    assert space["ot.num_scene_tokens"].high < min(space["vqvae.codebook_size"].choices)
    # search.yaml is not a params section
    assert load_params(REPO / "params").model_dump().keys() == raw.keys()


def test_trial_params_apply_fixed_then_suggestions(raw):
    search = config(fixed={"finetune.phase_c_epochs": 1, "ot.max_iter": 7})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    values = search.suggest(trial)
    params = search.trial_params(raw, values)
    assert trial.params == values
    assert params.vqvae.codebook_size == values["vqvae.codebook_size"] in (64, 128)
    assert params.lora.rank == values["lora.rank"]
    assert params.ot.epsilon == values["ot.epsilon"] and 0.01 <= values["ot.epsilon"] <= 0.5
    assert params.ot.num_scene_tokens % 8 == 0
    assert params.finetune.phase_c_epochs == 1 and params.ot.max_iter == 7
    assert params.lora.alpha == raw["lora"]["alpha"]  # untouched keys keep the project value


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"space": {**SPACE, "lora.rnk": {"type": "categorical", "choices": [2]}}}, "lora.rnk"),
        (
            {"space": {**SPACE, "vqvae.codebook_size": {"type": "categorical", "choices": [0, 8]}}},
            "vqvae.codebook_size",
        ),
        ({"space": {**SPACE, "nosection.key": {"type": "int", "low": 1, "high": 2}}}, "nosection"),
        ({"fixed": {"finetune.phase_b_epochs": -1}}, "fixed"),
        ({"fixed": {"lora.rank": 4}}, "both in space and fixed"),
    ],
)
def test_check_names_the_bad_key(raw, changes, needle):
    with pytest.raises(UserError, match=needle.replace(".", r"\.")):
        config(**changes).check(raw)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"space": {"ot.epsilon": {"type": "uniform", "low": 0, "high": 1}}}, "space"),
        (
            {"space": {"ot.epsilon": {"type": "float", "low": 0.0, "high": 1, "log": True}}},
            "low > 0",
        ),
        ({"space": {"ot.max_iter": {"type": "int", "low": 5, "high": 1}}}, "ot.max_iter"),
        ({"space": {}}, "space"),
        ({"space": SPACE, "objective": {"direction": "up"}}, "objective.direction"),
        ({"space": SPACE, "heartbeat": {"interval": 10, "grace_period": 5}}, "grace_period"),
    ],
)
def test_load_search_reports_file_and_field(tmp_path, content, needle):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(UserError, match=str(path)) as err:
        load_search(path)
    assert needle in str(err.value)


def test_missing_search_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="search space not found"):
        load_search(tmp_path / "search.yaml")


def test_sampler_and_pruner_by_name():
    search = config(
        sampler={"name": "RandomSampler", "seed": 3},
        pruner={"name": "MedianPruner", "n_warmup_steps": 2},
    )
    assert isinstance(search.sampler_for(0), optuna.samplers.RandomSampler)
    pruner = search.make_pruner()
    assert isinstance(pruner, optuna.pruners.MedianPruner) and pruner._n_warmup_steps == 2
    with pytest.raises(UserError, match="unknown optuna.samplers class 'Tpe'.*TPESampler"):
        config(sampler={"name": "Tpe"}).sampler_for(0)
    with pytest.raises(UserError, match="MedianPruner"):
        config(pruner={"name": "MedianPruner", "warmup": 1}).make_pruner()


def _first_proposals(search: SearchConfig, offset: int, n: int = 3) -> list[dict]:
    study = optuna.create_study(sampler=search.sampler_for(offset))
    proposals = []
    for _ in range(n):
        trial = study.ask()
        proposals.append(search.suggest(trial))
        study.tell(trial, 0.0)
    return proposals


def test_seed_offset_reproducible_and_distinct_per_worker():
    search = config(sampler={"name": "TPESampler", "seed": 0, "n_startup_trials": 5})
    assert _first_proposals(search, 0) == _first_proposals(search, 0)
    assert _first_proposals(search, 0) != _first_proposals(search, 10007)


def test_digest_tracks_what_defines_trials(raw):
    params = load_params(REPO / "params")
    base = config(sampler={"name": "TPESampler", "seed": 0})
    same = config(
        sampler={"name": "TPESampler", "seed": 5}, heartbeat={"interval": 1, "grace_period": 3}
    )
    assert base.digest(params) == same.digest(params)
    assert base.digest(params) != config(fixed={"ot.max_iter": 7}).digest(params)
    assert base.digest(params) != config(sampler={"name": "RandomSampler"}).digest(params)
    other = params.model_copy(update={"lora": params.lora.model_copy(update={"alpha": 3.0})})
    assert base.digest(params) != base.digest(other)
    moved = params.model_copy(update={"data": params.data.model_copy(update={"root": "/x"})})
    assert base.digest(params) == base.digest(moved)  # data is checked by its version instead
