"""The data links: the recorded data version (DVC md5 of the data folder) against

data.current        the data folder now
data.input          the digest of the run's MLflow dataset input
data.dvc_at_commit  ``git show <recorded commit>:<data>.dvc``
"""

from __future__ import annotations

from pathlib import Path

from scenellm.audit.checks import NOT_CHECKABLE, Check, compared, git_toplevel
from scenellm.config.schema import Params
from scenellm.project import Project
from scenellm.tracking.lineage import _git


def data_root(rec, project: Project, params: Params | None) -> Path | None:
    """The data folder now: the run's ``data.root`` in this project, else the recorded one."""
    if params is not None:
        return project.data_root(params.data.root)
    source = rec.dataset and rec.dataset.get("source")
    return Path(source) if source else None


def check_data_now(rec, project: Project, params: Params | None) -> Check:
    from scenellm.data.version import data_version

    root = data_root(rec, project, params)
    if rec.data_md5 is None:
        return Check(
            "data.current", "data", NOT_CHECKABLE, "no data version recorded (scenellm.data_md5)"
        )
    if root is None or not root.is_dir():
        reason = f"data folder {root} not found" if root else "no data folder recorded"
        return Check("data.current", "data", NOT_CHECKABLE, reason, rec.data_md5)
    try:
        now = data_version(root, cache_dir=project.home)
    except OSError as exc:
        return Check("data.current", "data", NOT_CHECKABLE, f"{root}: unreadable ({exc})")
    return compared(
        "data.current",
        "data",
        rec.data_md5,
        now,
        f"DVC md5 of {root}",
        f"DVC md5 of {root} is the recorded {now}",
    )


def check_dataset_input(rec) -> Check:
    if rec.dataset is None:
        return Check("data.input", "data", NOT_CHECKABLE, "the run logged no dataset input")
    return compared(
        "data.input",
        "data",
        rec.data_md5,
        rec.dataset["digest"],
        "data version",
        "the MLflow dataset input's digest is the recorded data version",
        ("on the MLflow dataset input", "in scenellm.data_md5"),
    )


def check_data_at_commit(rec, project: Project, params: Params | None) -> Check:
    """``git show <commit>:<data>.dvc`` records the same md5 as the run."""
    import yaml

    link, top, root = (
        "data.dvc_at_commit",
        git_toplevel(project.root),
        data_root(rec, project, params),
    )
    if top is None:
        return Check(link, "data", NOT_CHECKABLE, f"not a git repository: {project.root}")
    if rec.git_commit is None or rec.data_md5 is None or root is None:
        return Check(
            link,
            "data",
            NOT_CHECKABLE,
            "the run recorded no git commit, data version or data folder",
        )
    try:
        rel = root.resolve().with_name(root.name + ".dvc").relative_to(top).as_posix()
    except ValueError:
        return Check(link, "data", NOT_CHECKABLE, f"data folder {root} is outside {top}")
    text = _git(top, "show", f"{rec.git_commit}:{rel}")
    if text is None:
        return Check(link, "data", NOT_CHECKABLE, f"{rel} is not in commit {rec.git_commit}")
    outs = (yaml.safe_load(text) or {}).get("outs") or [{}]
    return compared(
        link,
        "data",
        rec.data_md5,
        outs[0].get("md5"),
        "data md5",
        f"{rel} at commit {rec.git_commit[:12]} records the run's data version",
        (f"in {rel} at commit {rec.git_commit[:12]}", "recorded by the run"),
    )
