"""Write frames and annotations in the exact Action Genome layout, atomically.

::

    annotations/object_classes.txt              36 raw names, person first
    annotations/relationship_classes.txt        26 raw names, AG order
    annotations/person_bbox.pkl                 {"VID.mp4/FRAME.png": {"bbox": (k, 4) xyxy, ...}}
    annotations/object_bbox_and_relationship.pkl  {same keys: [{"class", "bbox" (x, y, w, h), ...}]}
    annotations/frame_list.txt                  one key per line
    frames/VID.mp4/FRAME.png

Pickles use protocol 4 and hold only builtins and numpy arrays; keys are in video order,
frames of a video in increasing order, so the bytes depend on the content alone.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from scenellm.data import vocab
from scenellm.io import staged_dir


@contextmanager
def atomic_directory(out_dir: Path) -> Iterator[Path]:
    """Yield a sibling temp folder; on success it becomes ``out_dir`` (which must be absent
    or an empty folder), else it is deleted (:func:`scenellm.io.staged_dir`)."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir}: already exists and is not an empty folder; "
                              "remove it or choose another output folder.")
    with staged_dir(out_dir, replace=False) as tmp:
        yield tmp


def pixel_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """Round a box outwards to whole pixels inside the image, at least one pixel wide."""
    x0 = min(max(math.floor(box[0]), 0), width - 2)
    y0 = min(max(math.floor(box[1]), 0), height - 2)
    x1 = min(max(math.ceil(box[2]), x0 + 1), width - 1)
    y1 = min(max(math.ceil(box[3]), y0 + 1), height - 1)
    return x0, y0, x1, y1


class ActionGenomeWriter:
    """Collects frames into an AG folder; :meth:`close` writes the annotation files."""

    def __init__(self, root: Path, size: tuple[int, int]) -> None:
        self.root, self.size = root, size
        (root / "annotations").mkdir(parents=True)
        (root / "frames").mkdir()
        self.person: dict[str, dict] = {}
        self.objects: dict[str, list[dict]] = {}

    def add_frame(
        self,
        video: str,
        frame: int,
        image: Image.Image,
        person: tuple[tuple[int, int, int, int], float] | None,
        objects: list[tuple[str, tuple[int, int, int, int] | None, dict | None]],
        split: str,
    ) -> None:
        """One frame: ``person`` is (xyxy pixel box, score) or None when not detected;
        ``objects`` are (class, xyxy pixel box or None, {kind: labels} or None)."""
        key = f"{video}.mp4/{frame:06d}.png"
        folder = self.root / "frames" / f"{video}.mp4"
        folder.mkdir(exist_ok=True)
        image.save(folder / f"{frame:06d}.png", format="PNG", compress_level=1)
        if person is None:
            bbox, score = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        else:
            bbox = np.array([person[0]], np.float32)  # (1, 4) xyxy
            score = np.array([person[1]], np.float32)
        self.person[key] = {
            "bbox": bbox,
            "bbox_score": score,
            "bbox_size": (int(self.size[0]), int(self.size[1])),
            "bbox_mode": "xyxy",
        }
        entries = []
        for name, box, labels in objects:
            visible = box is not None
            entries.append(
                {
                    "class": name,
                    "bbox": (
                        float(box[0]),
                        float(box[1]),
                        float(box[2] - box[0]),
                        float(box[3] - box[1]),
                    )
                    if visible
                    else None,
                    "attention_relationship": list(labels["attention"]) if visible else None,
                    "spatial_relationship": list(labels["spatial"]) if visible else None,
                    "contacting_relationship": list(labels["contacting"]) if visible else None,
                    "metadata": {"tag": key[: -len(".png")], "set": split},
                    "visible": visible,
                }
            )
        self.objects[key] = entries

    def close(self) -> None:
        ann = self.root / "annotations"
        (ann / "object_classes.txt").write_text("\n".join(vocab.RAW_OBJECT_NAMES) + "\n")
        (ann / "relationship_classes.txt").write_text("\n".join(vocab.RAW_PREDICATE_NAMES) + "\n")
        (ann / "frame_list.txt").write_text("".join(f"{k}\n" for k in self.person))
        for name, data in (
            ("person_bbox.pkl", self.person),
            ("object_bbox_and_relationship.pkl", self.objects),
        ):
            with open(ann / name, "wb") as handle:
                pickle.dump(data, handle, protocol=4)
