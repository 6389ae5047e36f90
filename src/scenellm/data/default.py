"""The embedded default dataset: regenerated from its seed when missing, checked against
the md5 that ``data.dvc`` records.

Only the default ``data.root`` (``data`` in the project) is ever generated: any other
configured root that is missing is an error, so a mistyped path never trains on synthetic
data in its place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scenellm.config.schema import DataParams
from scenellm.data.frame_files import check_links
from scenellm.data.version import data_version, recorded_md5
from scenellm.errors import DataError
from scenellm.project import Project


@dataclass(frozen=True)
class DataStatus:
    root: Path
    md5: str
    recorded: str | None
    generated: bool

    @property
    def matches(self) -> bool:
        return self.recorded is None or self.md5 == self.recorded


DEFAULT_ROOT: str = DataParams.model_fields["root"].default


def is_default_root(project: Project, data: DataParams) -> bool:
    """``data.root`` names the project's default data folder (``data``)."""
    return project.data_root(data.root).resolve() == project.data_root(DEFAULT_ROOT).resolve()


def ensure_data(project: Project, data: DataParams, progress=None) -> DataStatus:
    """Make sure the configured data exists; synthesize the default set if it is missing.

    When the data folder is the DVC-tracked ``data/``, its md5 must equal ``data.dvc``'s.
    No link under the root may lead out of it (checked before its md5 reads any file).
    """
    root = project.data_root(data.root)
    generated = False
    if not (root / "annotations").is_dir():
        if not is_default_root(project, data):
            what = "has no annotations/ folder" if root.is_dir() else "not found"
            raise DataError(f"data.root={data.root!r}: {root} {what}; point data.root at an "
                            "Action Genome directory (annotations/, frames/), or leave it "
                            f"at {DEFAULT_ROOT!r} for the generated default dataset.")
        if root.exists() and any(root.iterdir()):
            raise DataError(f"{root}: folder exists but has no annotations/; move it away or "
                            "point data.root at an Action Genome directory.")
        from scenellm.data.synth import generate

        if root.exists():
            root.rmdir()
        generate(root, seed=data.synth_seed, videos=data.synth_videos,
                 frames=data.synth_frames, size=(data.synth_width, data.synth_height),
                 progress=progress)
        generated = True
    check_links(root)
    md5 = data_version(root, cache_dir=project.home)
    dvc_file = root.with_name(root.name + ".dvc")
    recorded = recorded_md5(dvc_file) if dvc_file.exists() else None
    status = DataStatus(root, md5, recorded, generated)
    if not status.matches:
        raise DataError(f"{root}: md5 {md5} differs from {dvc_file.name} ({recorded}); "
                        f"restore it with `rm -rf {root.name} && make data`, or record the "
                        f"change with `dvc add {root.name}`.")
    return status
