"""A link check, and the run-level links: git commit, params, registered model.

Every check ends in one of three states: **pass**, **fail** (the detail names the exact
difference) or **not checkable** (the detail says why: no git repository, data folder
missing, nothing recorded). The data links live in :mod:`scenellm.audit.data_checks`, the
stage links in :mod:`scenellm.audit.stage_checks`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scenellm.project import Project
from scenellm.tracking.lineage import _git

PASS, FAIL, NOT_CHECKABLE = "pass", "fail", "not checkable"


@dataclass
class Check:
    """One verified link; ``node`` is the lineage-graph node it belongs to."""

    link: str
    node: str
    status: str
    detail: str
    expected: str | None = None
    actual: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compared(
    link: str,
    node: str,
    expected: Any,
    actual: Any,
    what: str,
    ok_detail: str,
    labels: tuple[str, str] = ("now", "recorded"),
) -> Check:
    """pass when equal, otherwise fail with ``what: <actual> now, <expected> recorded``."""
    if expected == actual:
        return Check(link, node, PASS, ok_detail, str(expected), str(actual))
    return Check(
        link,
        node,
        FAIL,
        f"{what}: {actual} {labels[0]}, {expected} {labels[1]}",
        str(expected),
        str(actual),
    )


def dict_diff(recorded: dict, now: dict, prefix: str = "") -> list[str]:
    """``["vqvae.codebook_size: 16 → 17"]`` for every leaf that differs (recorded → now)."""
    out = []
    for key in sorted(set(recorded) | set(now), key=str):
        a, b = recorded.get(key, "<missing>"), now.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += dict_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} → {b!r}")
    return out


def git_toplevel(root: Path) -> Path | None:
    top = _git(root, "rev-parse", "--show-toplevel")
    return Path(top.strip()).resolve() if top else None


def check_commit(rec, project: Project) -> list[Check]:
    top, commit = git_toplevel(project.root), rec.git_commit
    if top is None:
        reason = f"not a git repository: {project.root}"
        return [
            Check("git.commit", "git", NOT_CHECKABLE, reason),
            Check("git.clean", "git", NOT_CHECKABLE, reason),
        ]
    if commit is None:
        exists = Check(
            "git.commit",
            "git",
            NOT_CHECKABLE,
            "the run recorded no git commit "
            "(scenellm.git_commit): it ran outside a repository or before a commit",
        )
    elif _git(top, "cat-file", "-e", f"{commit}^{{commit}}") is None:
        exists = Check(
            "git.commit",
            "git",
            FAIL,
            f"recorded commit {commit} does not exist in "
            f"{top} (rewritten history, or another repository)",
            commit,
            None,
        )
    else:
        exists = Check(
            "git.commit", "git", PASS, f"commit {commit} exists in {top}", commit, commit
        )
    dirty = rec.lineage["git_dirty"]
    if dirty is None:
        clean = Check("git.clean", "git", NOT_CHECKABLE, "no scenellm.git_dirty tag recorded")
    elif dirty:
        clean = Check(
            "git.clean",
            "git",
            NOT_CHECKABLE,
            "the run was recorded from a working "
            "tree with uncommitted changes; its code is not in any commit",
        )
    else:
        clean = Check("git.clean", "git", PASS, "recorded from a clean working tree")
    return [exists, clean]


def check_params(rec) -> Check:
    """``params.json`` (what the audit resolves fingerprints from) against the run's params."""
    from scenellm.tracking.runs import flatten_dict, param_value

    if rec.params_source != "params.json":
        return Check(
            "params.recorded",
            "params",
            NOT_CHECKABLE,
            "no params.json artifact to compare with the run's logged params",
        )
    if not rec.run_params:
        return Check("params.recorded", "params", NOT_CHECKABLE, "the run logged no params")
    # The train flow logs nested values flattened ("a.b.c"), a trial logs them as JSON.
    deep = {k: param_value(v) for k, v in flatten_dict(rec.raw_params).items()}
    shallow = {
        f"{s}.{k}": param_value(v) for s, vs in rec.raw_params.items() for k, v in vs.items()
    }
    keys = set(rec.run_params)
    flat = deep if len(keys & set(deep)) >= len(keys & set(shallow)) else shallow
    diffs = [
        f"{k}: {rec.run_params.get(k, '<missing>')} (run param) ≠ "
        f"{flat.get(k, '<missing>')} (params.json)"
        for k in sorted(set(flat) | set(rec.run_params))
        if flat.get(k) != rec.run_params.get(k)
    ]
    if diffs:
        return Check("params.recorded", "params", FAIL, "; ".join(diffs))
    return Check(
        "params.recorded",
        "params",
        PASS,
        f"params.json agrees with all {len(flat)} logged run params",
    )


def check_model(rec, model: dict[str, Any]) -> Check:
    """The registered version's data version and scores are the run's: its rule metric
    (validation) is the finetune run's best epoch, its reported test metric the evaluate
    run's."""
    from scenellm.evaluation import PRIMARY_METRIC as PRIMARY
    from scenellm.evaluation import SELECTION_METRIC
    from scenellm.tracking.registry import report_tag
    from scenellm.tracking.runs import metric_key

    tags, label = model["tags"], f"{model['name']} v{model['version']}"
    diffs = (
        []
        if tags.get("data_md5") == rec.data_md5
        else [f"data_md5 {tags.get('data_md5')} on the version ≠ {rec.data_md5} on the run"]
    )
    pairs = []  # (tag on the version, stage, metric logged by that stage's run)
    if tags.get("metric_name") == SELECTION_METRIC:
        pairs.append(("metric", "finetune", "best_" + SELECTION_METRIC))
    pairs.append((report_tag(PRIMARY), "evaluate", PRIMARY))
    checked = []
    for tag, stage_name, metric in pairs:
        stage = rec.stages.get(stage_name)
        score = stage.metrics.get(metric_key(metric)) if stage else None
        if score is None or tag not in tags:
            continue
        checked.append(metric)
        if float(tags[tag]) != score:
            diffs.append(f"{tag} {tags[tag]} on the version ≠ {metric} {score!r} logged by "
                         f"the {stage_name} run")
    if diffs:
        return Check("model.version", "model", FAIL, f"{label}: " + "; ".join(diffs))
    return Check(
        "model.version",
        "model",
        PASS,
        f"{label} was registered from this run with its data version"
        + (f" and its {', '.join(checked)}" if checked else ""),
    )
