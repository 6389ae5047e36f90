"""``scenellm promote VERSION [--force]``: the registry rule decides, ``--force`` overrides
it, and the rule's own "not comparable" message names that override."""

from __future__ import annotations

import json

import pytest

from scenellm.errors import UserError
from scenellm.tracking.promote import promote_version
from scenellm.tracking.registry import champion_info, log_model, register_and_promote
from scenellm.tracking.runs import Tracker

LOADER = "scenellm.tracking.registry:load_directory_manifest"
OLD, NEW = "a" * 32 + ".dir", "b" * 32 + ".dir"


@pytest.fixture(scope="module")
def logged(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    model_dir = tmp_path_factory.mktemp("model")
    (model_dir / "config.json").write_text(json.dumps({"tiny": True}))
    tracker = Tracker(tracking_uri, "promote-tests")
    run_id = tracker.start_parent("pipeline", {}, {})
    return {"client": tracker.client, "run_id": run_id,
            "uri": log_model(tracker.client, run_id, model_dir, loader=LOADER)}


def register(logged: dict, name: str, metric: float, data: str) -> dict:
    return register_and_promote(logged["client"], logged["run_id"], logged["uri"], metric,
                                data, name=name)


def test_a_version_scored_on_other_data_needs_force(logged, unique_name):
    client = logged["client"]
    register(logged, unique_name, 0.5, OLD)
    second = register(logged, unique_name, 0.9, NEW)
    assert second["alias"] == "challenger"
    assert f"`scenellm promote {second['version']} --force`" in second["reason"]
    with pytest.raises(UserError, match="pass --force"):
        promote_version(client, second["version"], name=unique_name)
    assert champion_info(client, unique_name)["version"] == 1
    out = promote_version(client, second["version"], force=True, name=unique_name)
    assert out == {"version": 2, "alias": "champion", "previous_champion": 1,
                   "reason": "forced over champion v1"}
    aliases = client.get_registered_model(unique_name).aliases
    assert {k: int(v) for k, v in aliases.items()} == {"champion": 2}  # no challenger left


def test_a_better_comparable_version_is_promoted_without_force(logged, unique_name):
    client = logged["client"]
    register(logged, unique_name, 0.5, OLD)
    client.set_registered_model_alias(unique_name, "champion", "1")
    register(logged, unique_name, 0.4, OLD)  # challenger: lower
    client.set_registered_model_alias(unique_name, "champion", "2")  # a worse champion
    assert promote_version(client, 1, name=unique_name)["previous_champion"] == 2
    assert champion_info(client, unique_name)["version"] == 1
    with pytest.raises(UserError, match="does not beat"):
        promote_version(client, 2, name=unique_name)


def test_unknown_version_is_one_line_naming_the_versions(logged, unique_name):
    register(logged, unique_name, 0.5, OLD)
    with pytest.raises(UserError, match=r"no version 9 \(versions: 1\)"):
        promote_version(logged["client"], 9, name=unique_name)
