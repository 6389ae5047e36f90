"""The embedded default dataset: regenerated from its seed when missing, checked against
the md5 that ``data.dvc`` records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scenellm.config.schema import DataParams
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


def ensure_data(project: Project, data: DataParams, progress=None) -> DataStatus:
    """Make sure the configured data exists; synthesize the default set if it is missing.

    When the data folder is the DVC-tracked ``data/``, its md5 must equal ``data.dvc``'s.
    """
    root = project.data_root(data.root)
    generated = False
    if not (root / "annotations").is_dir():
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
    md5 = data_version(root, cache_dir=project.home)
    dvc_file = root.with_name(root.name + ".dvc")
    recorded = recorded_md5(dvc_file) if dvc_file.exists() else None
    status = DataStatus(root, md5, recorded, generated)
    if not status.matches:
        raise DataError(f"{root}: md5 {md5} differs from {dvc_file.name} ({recorded}); "
                        f"restore it with `rm -rf {root.name} && make data`, or record the "
                        f"change with `dvc add {root.name}`.")
    return status
