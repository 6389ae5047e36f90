"""Frame files: PNG and JPEG frames of the annotated size pass; truncated JPEGs,
decompression bombs and links out of the root are refused in one line."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from scenellm.data.frame_files import check_frame, check_links
from scenellm.errors import DataError

KEY = "V.mp4/000001.jpg"


def jpeg(root: Path, size=(64, 48)) -> Path:
    path = root / "frames" / KEY
    path.parent.mkdir(parents=True)
    Image.new("RGB", size, (200, 10, 10)).save(path, format="JPEG")
    return path


def test_jpeg_frame_of_the_annotated_size_passes(tmp_path):
    jpeg(tmp_path)
    check_frame(tmp_path, KEY, (64, 48))


def test_truncated_jpeg_is_refused(tmp_path):
    path = jpeg(tmp_path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="does not decode"):
        check_frame(tmp_path, KEY, (64, 48))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header claims ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10000, 20000])  # Pillow warns above 89 M pixels, fails at 2x
def test_decompression_bomb_is_refused_in_one_line(tmp_path, side):
    path = tmp_path / "frames" / "V.mp4" / "000001.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(_png_header(side, side))
    with pytest.raises(DataError, match="does not decode.*exceeds limit") as info:
        check_frame(tmp_path, "V.mp4/000001.png", (side, side))
    assert "\n" not in str(info.value)


def test_links_inside_the_root_are_fine_and_outside_are_not(tmp_path):
    root = tmp_path / "root"
    jpeg(root)
    (root / "frames" / "alias.jpg").symlink_to(root / "frames" / KEY)
    check_links(root)
    (root / "frames" / "V.mp4" / "up").symlink_to(tmp_path)
    with pytest.raises(DataError, match="links outside the data root"):
        check_links(root)
