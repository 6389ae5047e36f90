"""The stage links of a lineage, four per stage:

    stage.<name>.run          the child run agrees with the parent's stage tags
    stage.<name>.output       tree_hash(<artifacts>/stages/<name>/<fp[:16]>) = recorded hash
    stage.<name>.record       its _SUCCESS.json names the recorded fingerprint, output hash,
                              data version, upstream fingerprints and the run's params
    stage.<name>.fingerprint  fingerprint(spec, run params, recorded data version,
                              recorded upstream fingerprints) under the current code

Each stage is checked against its *recorded* inputs, so one broken link fails only its own
checks instead of every stage downstream of it.
"""

from __future__ import annotations

import json
from pathlib import Path

from scenellm.audit.checks import FAIL, NOT_CHECKABLE, PASS, Check, compared, dict_diff
from scenellm.config.schema import Params
from scenellm.project import Project
from scenellm.stages.base import SUCCESS, fingerprint, tree_hash
from scenellm.stages.registry import PIPELINE, stage_module


def output_path(project: Project, name: str, fp: str) -> Path:
    return project.stage_dir(name) / fp[:16]


def read_record(path: Path) -> dict | None:
    try:
        return json.loads((path / SUCCESS).read_text())
    except (OSError, ValueError):
        return None


def changed_after(path: Path) -> list[str]:
    """Files modified after ``_SUCCESS.json`` was written (the runner writes it last)."""
    done = (path / SUCCESS).stat().st_mtime_ns
    return sorted(
        p.relative_to(path).as_posix()
        for p in path.rglob("*")
        if p.is_file() and p.name != SUCCESS and p.stat().st_mtime_ns > done
    )


def recorded_upstream(rec, spec) -> dict[str, str | None]:
    return {d: rec.stages[d].fingerprint if d in rec.stages else None for d in spec.upstream}


def check_run(stage) -> Check:
    link = f"stage.{stage.name}.run"
    if stage.child_run_id is None:
        return Check(link, stage.name, NOT_CHECKABLE, "no child run recorded for this stage")
    diffs = [
        f"{f} {stage.child.get(f)} on child run {stage.child_run_id} ≠ "
        f"{getattr(stage, f)} on the run"
        for f in ("fingerprint", "output_hash")
        if stage.child.get(f) != getattr(stage, f)
    ]
    if stage.child_status != "FINISHED":
        diffs.append(f"child run {stage.child_run_id} ended {stage.child_status}")
    if diffs:
        return Check(link, stage.name, FAIL, "; ".join(diffs))
    return Check(link, stage.name, PASS, f"child run {stage.child_run_id} agrees")


def check_output(stage, path: Path) -> Check:
    link = f"stage.{stage.name}.output"
    if not path.is_dir():
        return Check(
            link,
            stage.name,
            NOT_CHECKABLE,
            f"output {path} not found (deleted, or another SCENELLM_HOME)",
            stage.output_hash,
        )
    if stage.output_hash is None:
        return Check(link, stage.name, NOT_CHECKABLE, "no output hash recorded")
    check = compared(
        link,
        stage.name,
        stage.output_hash,
        tree_hash(path),
        f"tree hash of {path}",
        f"files under {path} hash to the recorded {stage.output_hash}",
        ("on disk", "recorded"),
    )
    if check.status == FAIL and (path / SUCCESS).exists():
        changed = changed_after(path)
        check.detail += (
            "; changed after the output was completed: " + ", ".join(changed)
            if changed
            else "; no file is newer than _SUCCESS.json (files were "
            "removed, renamed or had their times reset)"
        )
    return check


def check_record(rec, stage, path: Path, spec, params: Params | None) -> Check:
    from scenellm.config.load import section_digest

    link, record = f"stage.{stage.name}.record", read_record(path)
    if record is None:
        return Check(link, stage.name, NOT_CHECKABLE, f"{path / SUCCESS} not found")
    upstream = recorded_upstream(rec, spec)
    expected = {
        "fingerprint": stage.fingerprint,
        "output_hash": stage.output_hash,
        "data_version": rec.data_md5,
        "upstream": upstream,
    }
    if params is not None:
        expected["params"] = section_digest(params, spec.sections)
    diffs = dict_diff({k: record.get(k) for k in expected}, expected)
    if diffs:
        return Check(link, stage.name, FAIL, f"{SUCCESS} (→ the run): " + "; ".join(diffs))
    return Check(
        link,
        stage.name,
        PASS,
        f"{SUCCESS} agrees with the run on fingerprint, "
        "output hash, data version, upstream" + (" and params" if params else ""),
    )


def check_fingerprint(
    rec, stage, path: Path, spec, params: Params | None, params_error: str | None
) -> Check:
    from scenellm.config.load import section_digest

    link = f"stage.{stage.name}.fingerprint"
    if params is None:
        return Check(link, stage.name, NOT_CHECKABLE, f"params do not resolve: {params_error}")
    upstream = recorded_upstream(rec, spec)
    missing = [f"{dep} fingerprint" for dep, fp in upstream.items() if fp is None]
    missing += ["data version"] * (rec.data_md5 is None)
    if missing:
        return Check(link, stage.name, NOT_CHECKABLE, "not recorded: " + ", ".join(missing))
    now = fingerprint(spec, params, rec.data_md5, upstream)
    if now == stage.fingerprint:
        return Check(
            link,
            stage.name,
            PASS,
            "params, data version and upstream resolve to "
            "the recorded fingerprint under the current code",
            now,
            now,
        )
    record = read_record(path)
    used = {
        "params": section_digest(params, spec.sections),
        "data_version": rec.data_md5,
        "upstream": upstream,
    }
    if record is None:
        cause = "its inputs or code changed (no output record to tell which)"
    elif diffs := dict_diff({k: record.get(k) for k in used}, used):
        cause = "inputs differ from those its output was made from (record → run): " + "; ".join(
            diffs
        )
    else:
        cause = (
            "the run's inputs match its output's record, so the stage's code changed "
            f"since the run ({', '.join(spec.code)})"
        )
    return Check(
        link,
        stage.name,
        FAIL,
        f"resolves to {now[:16]}…, recorded {stage.fingerprint[:16]}…: {cause}",
        stage.fingerprint,
        now,
    )


def stage_checks(
    rec, project: Project, params: Params | None, params_error: str | None
) -> list[Check]:
    checks = []
    for name in [*PIPELINE, *sorted(set(rec.stages) - set(PIPELINE))]:
        stage = rec.stages.get(name)
        if stage is None or stage.fingerprint is None:
            checks.append(Check(f"stage.{name}", name, NOT_CHECKABLE, "not recorded by this run"))
            continue
        if name not in PIPELINE:
            checks.append(
                Check(f"stage.{name}", name, NOT_CHECKABLE, "no such stage in the current code")
            )
            continue
        spec, path = stage_module(name).SPEC, output_path(project, name, stage.fingerprint)
        checks += [
            check_run(stage),
            check_output(stage, path),
            check_record(rec, stage, path, spec, params),
            check_fingerprint(rec, stage, path, spec, params, params_error),
        ]
    return checks
