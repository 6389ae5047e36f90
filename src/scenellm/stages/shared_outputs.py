"""Stage outputs shared through the DVC remote, so that a worker needs no shared folder.

On the remote (:mod:`scenellm.data.dvc_remote`) an output lives at
``<url>/scenellm/stages/<stage>/<fingerprint[:16]>/``: its files, then its ``_SUCCESS.json``,
uploaded last, so an output is there once its record is. Sharing is on when the remote is
explicit (``$SCENELLM_DVC_REMOTE`` or a ``store`` remote in DVC's config); the default local
remote would only double the disk a single machine uses.

- :meth:`SharedOutputs.fetch`, before a stage runs whose output is missing here: download
  into a temp folder beside the output; the record must name this fingerprint and every file
  must match its manifest by sha256 (:mod:`scenellm.stages.manifest`); then publish by the
  same rename the store uses. A copy that fails is refused (one line on stderr) and the
  stage computes here.
- :meth:`SharedOutputs.push`, after a stage ran or was reused: upload the output when the
  remote lacks it, or held a copy that was refused.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from scenellm import io
from scenellm.config.schema import Params
from scenellm.data.dvc_remote import DvcRemote
from scenellm.project import Project
from scenellm.stages import manifest
from scenellm.stages.base import SUCCESS, StageResult, StageSpec, fingerprint, read_record


class Refused(Exception):
    """A remote copy that is not the output its fingerprint names."""


class SharedOutputs:
    def __init__(self, remote: DvcRemote) -> None:
        self.remote = remote
        self.refused: set[tuple[str, str]] = set()  # (stage, fingerprint) to overwrite

    @staticmethod
    def of(project: Project) -> SharedOutputs | None:
        """The shared outputs of ``project``, or None when sharing is off."""
        remote = DvcRemote.of(project)
        return _open(remote) if remote is not None and remote.explicit else None

    def _folder(self, stage: str, fp: str) -> str:
        fs = self.remote.remote.fs
        return fs.join(self.remote.remote.path, "scenellm", "stages", stage, fp[:16])

    def _complete(self, folder: str) -> bool:
        fs = self.remote.remote.fs
        return fs.exists(fs.join(folder, SUCCESS))

    def holds(self, stage: str, fp: str) -> bool:
        """Whether the remote holds a complete output of ``stage`` under fingerprint ``fp``
        (what ``--dry-run`` reports as "fetch")."""
        with self.remote.reached():
            return self._complete(self._folder(stage, fp))

    def fetch(self, spec: StageSpec, params: Params, data_version: str,
              inputs: dict[str, StageResult], project: Project) -> bool:
        """Bring the remote's copy of this stage's output here when it is missing here;
        True when the output is here now."""
        from filelock import FileLock

        fp = fingerprint(spec, params, data_version, {k: v.fingerprint
                                                      for k, v in inputs.items()})
        stage_dir = project.stage_dir(spec.name)
        final = stage_dir / fp[:16]
        if (final / SUCCESS).exists():
            return True
        with self.remote.reached():
            folder = self._folder(spec.name, fp)
            if not self._complete(folder):
                return False
        stage_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(stage_dir / f"{fp[:16]}.lock")):
            if (final / SUCCESS).exists():  # another worker brought or built it meanwhile
                return True
            io.recover_dir(final)
            try:
                with io.staged_dir(final) as tmp, self.remote.reached():
                    self._download(folder, tmp)
                    self._verify(tmp, spec.name, fp)
            except Refused as exc:
                self.refused.add((spec.name, fp))
                print(f"scenellm: {spec.name} output {fp[:16]} on {self.remote} refused: "
                      f"{exc}; computing it here", file=sys.stderr)
                return False
        print(f"scenellm: {spec.name} output {fp[:16]} fetched from {self.remote}",
              file=sys.stderr)
        return True

    def _download(self, folder: str, tmp: Path) -> None:
        fs = self.remote.remote.fs
        for path in fs.find(folder):
            target = tmp.joinpath(*fs.relparts(path, folder))
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(target))

    def _verify(self, tmp: Path, stage: str, fp: str) -> None:
        """The downloaded folder is the output ``fp`` names, file for file; its record then
        carries this machine's fast-path stat and where it came from."""
        record = read_record(tmp)
        if record is None:
            raise Refused(f"{SUCCESS} is missing or unreadable")
        if record.get("stage") != stage or record.get("fingerprint") != fp:
            raise Refused(f"its record names {record.get('stage')} "
                          f"{str(record.get('fingerprint'))[:16]}")
        problem, _ = manifest.check(tmp, record.get("manifest"), SUCCESS, full=True)
        if problem is not None:
            raise Refused(problem)
        record["manifest"] = manifest.refresh_stat(tmp, record["manifest"])
        record["fetched_from"] = self.remote.url
        io.atomic_write_json(tmp / SUCCESS, record)

    def push(self, result: StageResult) -> bool:
        """Upload ``result``'s output unless the remote holds it; True when uploaded."""
        fs = self.remote.remote.fs
        key = (result.name, result.fingerprint)
        with self.remote.reached():
            folder = self._folder(result.name, result.fingerprint)
            if key not in self.refused and self._complete(folder):
                return False
            if fs.exists(folder):  # a refused or half-uploaded copy: none of its files stay
                fs.rm(folder, recursive=True)
            record = result.path / SUCCESS
            files = sorted(p for p in result.path.rglob("*") if p.is_file() and p != record)
            for path in [*files, record]:  # the record last
                target = fs.join(folder, *path.relative_to(result.path).parts)
                fs.makedirs(fs.parent(target), exist_ok=True)
                fs.put_file(str(path), target)
        self.refused.discard(key)
        return True


@lru_cache(maxsize=4)
def _open(remote: DvcRemote) -> SharedOutputs:
    return SharedOutputs(remote)
