"""Only the default data folder is ever generated; any other missing data.root is an error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scenellm.config.schema import DataParams
from scenellm.data.default import ensure_data
from scenellm.errors import DataError
from scenellm.project import Project

TINY = {"synth_videos": 2, "synth_frames": 3, "synth_width": 32, "synth_height": 32}


@pytest.mark.parametrize("root", ["typo", "{tmp}/absolute/typo", "data/../elsewhere"])
def test_missing_non_default_root_is_an_error_and_nothing_is_generated(tmp_path, root):
    project = Project(tmp_path)
    with pytest.raises(DataError, match=r"data.root=.*not found; point data.root at"):
        ensure_data(project, DataParams(root=root.format(tmp=tmp_path), **TINY))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_non_default_root_without_annotations_is_an_error(tmp_path):
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError, match="has no annotations/ folder"):
        ensure_data(Project(tmp_path), DataParams(root="mine", **TINY))


def test_default_root_is_generated(tmp_path):
    status = ensure_data(Project(tmp_path), DataParams(root="./data", **TINY))
    assert status.generated and (tmp_path / "data" / "annotations").is_dir()


def test_link_out_of_the_data_root_is_refused_before_hashing(tmp_path):
    ensure_data(Project(tmp_path), DataParams(**TINY))
    (tmp_path / "data" / "frames" / "leak.png").symlink_to("/etc/passwd")
    with pytest.raises(DataError, match="links outside the data root"):
        ensure_data(Project(tmp_path), DataParams(**TINY))


def test_data_ensure_command_with_a_typo_root_exits_2_in_one_line(tmp_path):
    params, typo = tmp_path / "params", tmp_path / "nowhere" / "typo"
    params.mkdir()
    (params / "data.yaml").write_text(f"data:\n  root: {typo}\n")
    out = subprocess.run([sys.executable, "-m", "scenellm.cli.main", "data", "ensure"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert f"data.root='{typo}'" in line and "not found" in line
    assert not (tmp_path / "nowhere").exists()
