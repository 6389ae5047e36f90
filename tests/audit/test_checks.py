"""Link checks on a recorded run: clean, then each link broken by one byte, then deleted."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from mlflow import MlflowClient

from scenellm.audit.checks import FAIL, NOT_CHECKABLE, PASS
from scenellm.audit.report import audit
from scenellm.errors import UserError
from scenellm.stages.registry import PIPELINE

pytestmark = pytest.mark.slow
STAGES = PIPELINE
LINKS_PER_STAGE = ("run", "output", "record", "fingerprint")


@contextlib.contextmanager
def flipped(path: Path, offset: int = -1):
    """One byte of ``path`` XOR 1 inside the block; bytes and times restored after."""
    original, stat = path.read_bytes(), path.stat()
    data = bytearray(original)
    data[offset] ^= 1
    path.write_bytes(bytes(data))
    try:
        yield path
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@contextlib.contextmanager
def moved(path: Path):
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)
        aside.rename(path)


@contextlib.contextmanager
def tag(client: MlflowClient, run_id: str, key: str, value: str):
    before = client.get_run(run_id).data.tags[key]
    client.set_tag(run_id, key, value)
    try:
        yield
    finally:
        client.set_tag(run_id, key, before)


def statuses(report) -> dict[str, str]:
    return {c.link: c.status for c in report.checks}


def detail(report, link: str) -> str:
    return next(c.detail for c in report.checks if c.link == link)


def run_artifacts(client: MlflowClient, run_id: str) -> Path:
    return Path(unquote(urlparse(client.get_run(run_id).info.artifact_uri).path))


def stage_output(env, stage: str) -> Path:
    fp = (
        MlflowClient(env.tracking_uri)
        .get_run(env.run_id)
        .data.tags[f"scenellm.stage.{stage}.fingerprint"]
    )
    return env.home / "artifacts" / "stages" / stage / fp[:16]


def test_unmodified_run_in_a_repository_audits_clean(env):
    report = audit(env.run_id, env.repo, log=False)
    expected = {
        "git.commit",
        "git.clean",
        "data.current",
        "data.input",
        "data.dvc_at_commit",
        "params.recorded",
    } | {f"stage.{s}.{k}" for s in STAGES for k in LINKS_PER_STAGE}
    assert statuses(report) == dict.fromkeys(expected, PASS)
    assert report.verdict == PASS and report.exit_code == 0
    assert env.commits[1] in detail(report, "git.commit")


@pytest.mark.parametrize("target", ["scenellm@champion", "scenellm/1", "models:/scenellm/1"])
def test_model_targets_audit_the_run_that_registered_them(env, target):
    report = audit(target, env.repo, log=False)
    assert report.recorded.run_id == env.run_id and report.target.kind == "model"
    assert statuses(report)["model.version"] == PASS
    assert report.exit_code == 0


def test_outside_a_repository_commit_links_are_not_checkable(env):
    report = audit(env.plain_run_id, env.plain, log=False)
    got = statuses(report)
    for link in ("git.commit", "git.clean", "data.dvc_at_commit"):
        assert got.pop(link) == NOT_CHECKABLE
        assert detail(report, link).startswith("not a git repository")
    assert set(got.values()) == {PASS} and report.exit_code == 0
    # Both runs reused the same stage outputs, so they record the same fingerprints.
    assert (
        report.recorded.stages["finetune"].fingerprint
        == audit(env.run_id, env.repo, log=False).recorded.stages["finetune"].fingerprint
    )


def test_one_byte_of_a_stage_output_breaks_that_link_only(env):
    target = stage_output(env, "vqvae") / "model.safetensors"
    with flipped(target):
        report = audit(env.run_id, env.repo, log=False)
    assert report.failed == ["stage.vqvae.output"] and report.exit_code == 1
    assert "changed after the output was completed: model.safetensors" in detail(
        report, "stage.vqvae.output"
    )
    assert audit(env.run_id, env.repo, log=False).exit_code == 0


def test_one_byte_of_the_data_breaks_the_data_link(env):
    video = next(p for p in sorted((env.data / "frames").rglob("*")) if p.is_file())
    with flipped(video):
        report = audit(env.run_id, env.repo, log=False)
    assert report.failed == ["data.current"]
    assert report.recorded.data_md5 in detail(report, "data.current")


def test_one_byte_of_params_json_breaks_params_and_the_stage_reading_it(env):
    client = MlflowClient(env.tracking_uri)
    path = run_artifacts(client, env.run_id) / "params.json"
    text = path.read_text()
    offset = text.index('"codebook_size": 16') + len('"codebook_size": 1')
    with flipped(path, offset):  # "16" → "17"
        report = audit(env.run_id, env.repo, log=False)
    assert sorted(report.failed) == [
        "params.recorded",
        "stage.vqvae.fingerprint",
        "stage.vqvae.record",
    ]
    assert "vqvae.codebook_size: 16 (run param) ≠ 17 (params.json)" in detail(
        report, "params.recorded"
    )
    assert "vqvae.codebook_size: 16 → 17" in detail(report, "stage.vqvae.fingerprint")


def test_a_changed_run_param_breaks_the_params_link(env):
    db = env.tracking_uri.removeprefix("sqlite:///")
    update = "UPDATE params SET value = ? WHERE run_uuid = ? AND key = 'lora.rank'"
    with contextlib.closing(sqlite3.connect(db)) as con:
        before = con.execute(
            "SELECT value FROM params WHERE run_uuid = ? AND key = 'lora.rank'", (env.run_id,)
        ).fetchone()[0]
        with con:
            con.execute(update, (str(int(before) + 1), env.run_id))
        try:
            report = audit(env.run_id, env.repo, log=False)
        finally:
            with con:
                con.execute(update, (before, env.run_id))
    assert report.failed == ["params.recorded"]
    assert f"lora.rank: {int(before) + 1} (run param) ≠ {before} (params.json)" in detail(
        report, "params.recorded"
    )


def test_a_commit_missing_from_the_repository_fails(env):
    client = MlflowClient(env.tracking_uri)
    with tag(client, env.run_id, "scenellm.git_commit", "f" * 40):
        report = audit(env.run_id, env.repo, log=False)
    assert report.failed == ["git.commit"]
    assert statuses(report)["data.dvc_at_commit"] == NOT_CHECKABLE


def test_data_dvc_at_the_recorded_commit_must_hold_the_run_data_version(env):
    client = MlflowClient(env.tracking_uri)
    with tag(client, env.run_id, "scenellm.git_commit", env.commits[0]):
        report = audit(env.run_id, env.repo, log=False)
    assert report.failed == ["data.dvc_at_commit"]
    assert "0" * 32 + ".dir in data.dvc at commit" in detail(report, "data.dvc_at_commit")


def test_deleted_artifacts_are_not_checkable_rather_than_a_crash(env):
    client = MlflowClient(env.tracking_uri)
    with (
        moved(env.home / "artifacts" / "stages"),
        moved(run_artifacts(client, env.run_id).parents[1]),
    ):
        report = audit(env.run_id, env.repo, reproduce="eval", log=False)
    got = statuses(report)
    for stage in STAGES:
        assert got[f"stage.{stage}.output"] == NOT_CHECKABLE
        assert got[f"stage.{stage}.record"] == NOT_CHECKABLE
        assert got[f"stage.{stage}.fingerprint"] == PASS  # from the run's logged params
    assert got["params.recorded"] == NOT_CHECKABLE and report.recorded.params_source == "run params"
    assert got["reproduce.eval"] == NOT_CHECKABLE and FAIL not in got.values()
    assert report.exit_code == 0


def test_unknown_targets_are_one_line_user_errors(env):
    for target in ("0" * 32, "scenellm/99", "scenellm@nobody", "study:none/trial:0", "what"):
        with pytest.raises(UserError, match=target.split("/")[0]):
            audit(target, env.repo, log=False)


def test_report_json_is_serialisable_and_names_every_check(env):
    report = audit(env.run_id, env.repo, log=False)
    data = json.loads(json.dumps(report.to_dict(), default=str))
    assert data["verdict"] == "pass" and data["exit_code"] == 0
    assert len(data["checks"]) == len(report.checks) == data["counts"]["pass"]
    assert data["stages"]["vqvae"]["output"] == str(stage_output(env, "vqvae"))
