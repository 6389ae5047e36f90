"""The project's DVC remote ``store``: where data versions travel between machines.

Its URL, first found of:

1. ``$SCENELLM_DVC_REMOTE`` (``s3://bucket/scenellm``, ``gs://…``, ``ssh://host/path``, a
   folder), passed to DVC per command; the committed ``.dvc/config`` is never rewritten;
2. a ``store`` remote in DVC's own config (``dvc remote add --local store s3://…`` writes the
   git-ignored ``.dvc/config.local``; ``dvc remote modify --local store …`` adds
   credentials or an endpoint, which apply in case 1 too);
3. the local folder ``<home>/dvc-remote`` (``home``: ``.scenellm/`` or ``$SCENELLM_HOME``).

Cases 1 and 2 are *explicit*: only then do stage outputs travel through the remote too
(:mod:`scenellm.stages.shared_outputs`). Pushing and pulling are DVC's own
(``Repo.commit``/``push``/``pull``); a data version is on the remote when its ``.dir``
object is, which DVC uploads after the files it lists.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from scenellm.errors import DataError, ServiceError
from scenellm.project import Project

REMOTE = "store"
ENV = "SCENELLM_DVC_REMOTE"


@contextmanager
def _quiet_dvc():
    """DVC logs warnings and progress on its own logger; the caller reports in one line."""
    logger = logging.getLogger("dvc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class DvcRemote:
    """The ``store`` remote of the DVC repository at ``project.root``."""

    project: Project
    url: str
    explicit: bool

    @classmethod
    def of(cls, project: Project) -> DvcRemote | None:
        """The remote (module docstring), or None when the project is no DVC repository."""
        if not (project.root / ".dvc").is_dir():
            return None
        if os.environ.get(ENV):
            url = os.environ[ENV]
            return cls(project, url if "://" in url else str(Path(url).resolve()), True)
        from dvc.config import Config

        configured = Config(dvc_dir=str(project.root / ".dvc"))["remote"].get(REMOTE, {})
        if configured.get("url"):
            return cls(project, configured["url"], True)
        return cls(project, str(project.home / "dvc-remote"), False)

    def __str__(self) -> str:
        return f"DVC remote '{REMOTE}' ({self.url})"

    @cached_property
    def repo(self):
        from dvc.repo import Repo

        return Repo(str(self.project.root), remote=REMOTE, remote_config={"url": self.url})

    @cached_property
    def remote(self):
        """DVC's ``Remote``: its filesystem (``.fs``) and root path (``.path``)."""
        return self.repo.cloud.get_remote(REMOTE)

    def has(self, md5: str) -> bool:
        """Whether the object ``md5`` (a data version: ``<md5>.dir``) is on the remote."""
        with self.reached():
            return self.repo.cloud.get_remote_odb(REMOTE).exists(md5)

    @contextmanager
    def reached(self):
        """DVC's and the filesystem's failures as one line naming the remote."""
        from dvc.exceptions import DvcException

        try:
            with _quiet_dvc():
                yield
        except (DvcException, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ServiceError(f"{self} failed: {first[:200]}") from exc

    def push(self, dvc_file: Path) -> bool:
        """Push the data version ``dvc_file`` records (cached first); False when the remote
        already holds it."""
        from scenellm.data.version import data_version, recorded_md5

        md5 = recorded_md5(dvc_file)
        if self.has(md5):
            return False
        root = dvc_file.with_name(dvc_file.name.removesuffix(".dvc"))
        current = data_version(root, cache_dir=self.project.home)
        if current != md5:  # `dvc commit` would record it: only what git records is pushed
            raise DataError(f"{root}: md5 {current} differs from {dvc_file.name} ({md5}); "
                            f"record the change with `dvc add {root.name}` and commit "
                            f"{dvc_file.name} before pushing it.")
        with self.reached():
            self.repo.commit(str(dvc_file), force=True)
            self.repo.push(targets=[str(dvc_file)], remote=REMOTE)
        return True

    def pull(self, dvc_file: Path) -> str:
        """Check out the data version ``dvc_file`` records; a one-line error naming the
        remote when it is not there."""
        from scenellm.data.version import recorded_md5

        md5 = recorded_md5(dvc_file)
        if not self.has(md5):
            raise DataError(f"data version {md5} ({dvc_file.name}) is not on {self}; run "
                            f"`scenellm data push` where the data is, or set {ENV} to the "
                            "remote that holds it.")
        with self.reached():
            self.repo.pull(targets=[str(dvc_file)], remote=REMOTE)
        return md5


def tracking_file(project: Project, root: Path) -> Path | None:
    """The ``.dvc`` file beside ``root`` that tracks it inside this DVC repository, or None."""
    dvc_file = root.with_name(root.name + ".dvc")
    inside = dvc_file.resolve().is_relative_to(project.root.resolve())
    return dvc_file if inside and dvc_file.is_file() and (project.root / ".dvc").is_dir() \
        else None


def pull_missing(project: Project, root: Path) -> str | None:
    """Pull the data version of ``root`` when the folder is missing and a ``.dvc`` file
    tracks it (a worker on a fresh clone); its md5, or None when nothing was pulled."""
    if root.exists():
        return None
    dvc_file = tracking_file(project, root)
    remote = DvcRemote.of(project) if dvc_file else None
    if remote is None:
        return None
    return remote.pull(dvc_file)


def push_tracked(project: Project, root: Path) -> DvcRemote | None:
    """Push the data version of ``root`` when a ``.dvc`` file tracks it; the remote when
    this pushed it, None when the remote already held it or nothing tracks ``root``."""
    dvc_file = tracking_file(project, root)
    remote = DvcRemote.of(project) if dvc_file else None
    return remote if remote is not None and remote.push(dvc_file) else None
