"""Malformed Action Genome data stops at the door.

Every kind in ``malformed_ag.KINDS`` (tests/data) damages a copy of a small valid dataset
and is fed to the loader (what ``prepare`` runs first) and to ``scenellm data validate``.
Each must give one line naming the file, the key and the rule: a ``DataError`` from the
loader; exit 2, one stderr line, no traceback and nothing written from the command. No file
outside the data root may be opened: Python's ``open`` audit events are recorded, and the
files outside the root start with an access time of 0, which any read would move.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from malformed_ag import KINDS, Kind, Site
from typer.testing import CliRunner

from scenellm.cli.main import app
from scenellm.data.ag import load_action_genome
from scenellm.data.synth import generate
from scenellm.errors import DataError

_opened: list[list[str]] = []


def _record_open(event: str, args: tuple) -> None:
    if event == "open" and _opened and isinstance(args[0], str | bytes | os.PathLike):
        _opened[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_record_open)  # inert unless a `recording()` block is open


@contextmanager
def recording() -> Iterator[list[str]]:
    _opened.append([])
    try:
        yield _opened[-1]
    finally:
        _opened.pop()


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("valid") / "ag"
    generate(root, seed=0, videos=6, frames=4, size=(64, 48))
    train = load_action_genome(root).split("train")
    return root, next(iter(train.values()))[0].key


@pytest.fixture
def site(valid, tmp_path) -> Site:
    """A copy of the valid data at ``tmp/ag`` and, beside it, ``tmp/outside``."""
    import shutil

    source, key = valid
    shutil.copytree(source, tmp_path / "ag", symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(source / "frames" / key, outside / "secret.png")  # would pass every check
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return Site(tmp_path / "ag", outside, key)


def unread(outside: Path) -> list[Path]:
    """Set the access time of every file outside the root to 0; returns them."""
    files = [p for p in outside.rglob("*") if p.is_file() and not p.is_symlink()]
    for path in files:
        os.utime(path, (0, path.stat().st_mtime))
    return files


def damaged(kind: Kind, site: Site) -> list[Path]:
    kind.damage(site)
    return unread(site.outside)


def assert_nothing_outside_read(site: Site, sentinels: list[Path], opened=()) -> None:
    assert [p for p in sentinels if p.stat().st_atime != 0] == []
    escaped = [p for p in opened if Path(os.path.realpath(p)).is_relative_to(site.outside)
               or os.path.realpath(p) == "/etc/passwd"]
    assert escaped == []
    assert not (site.outside / "pwned").exists()


def assert_one_line_naming(message: str, kind: Kind, site: Site) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert re.search(kind.rule, message), message
    assert str(site.root) in message, message  # the file, by its path
    if kind.names_key:
        assert repr(site.key) in message, message


IDS = [kind.name for kind in KINDS]


def test_the_catalogue_holds_at_least_40_kinds():
    assert len(KINDS) >= 40 and len(set(IDS)) == len(IDS)


def test_the_valid_copy_loads(site):
    sentinels = unread(site.outside)
    with recording() as opened:
        assert load_action_genome(site.root).counts()["train"]["frames"] > 0
    assert_nothing_outside_read(site, sentinels, opened)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_loader_refuses_in_one_line_without_reading_outside(kind, site):
    sentinels = damaged(kind, site)
    with recording() as opened, pytest.raises(DataError) as info:
        load_action_genome(site.root)
    assert_one_line_naming(str(info.value), kind, site)
    assert_nothing_outside_read(site, sentinels, opened)


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_data_validate_exits_2_with_one_line_and_writes_nothing(kind, site):
    sentinels = damaged(kind, site)
    before = sorted(site.root.parent.iterdir())
    with recording() as opened:
        result = CliRunner().invoke(app, ["data", "validate", str(site.root)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert_one_line_naming(lines[0], kind, site)
    assert result.stdout == ""
    assert sorted(site.root.parent.iterdir()) == before  # no report, no partial folder
    assert_nothing_outside_read(site, sentinels, opened)


SUBPROCESS = ["symlink to /etc/passwd", "symlink to an image outside the root",
              "bbox_size 10**30", "pickle allocating by bytearray", "dangling frame symlink",
              "non-UTF-8 object_classes.txt"]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_scenellm_data_validate_command_exits_2_in_one_line(name, site):
    kind = KINDS[IDS.index(name)]
    sentinels = damaged(kind, site)
    before = sorted(site.root.parent.iterdir())
    out = subprocess.run([sys.executable, "-m", "scenellm.cli.main", "data", "validate",
                          str(site.root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert_one_line_naming(line, kind, site)
    assert sorted(site.root.parent.iterdir()) == before
    assert_nothing_outside_read(site, sentinels)


def test_box_slightly_outside_is_reported_by_the_data_guard(site):
    """The loader lets a box that leaves the frame by a pixel through; the GX suite
    reports it, in one stderr line that names the rule, the frame and the report."""
    from malformed_ag import first_object

    first_object(bbox=(60.0, 10.0, 5.0, 5.0))(site)  # x2 = 65 > width 64
    report = site.root.parent / "ag-validation"
    result = CliRunner().invoke(app, ["data", "validate", str(site.root)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "object box x2 ≤ frame width" in line and repr(site.key) in line
    assert str(report / "validation.txt") in line and (report / "validation.txt").is_file()
