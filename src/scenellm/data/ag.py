"""Action Genome loader with STTran's filtering, reproduced exactly.

Per split (``metadata.set`` of a frame's first object, as STTran reads it):

1. iterate frames in ``person_bbox.pkl`` order; keep a frame if at least one of its
   objects is visible;
2. drop kept frames whose person box array is empty;
3. keep only visible objects, converting boxes from (x, y, w, h) to (x1, y1, x2, y2);
4. keep a video only if it has more than two kept frames (``min_frames=3``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scenellm.data import vocab
from scenellm.data.unpickle import load_pickle
from scenellm.errors import DataError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class ObjectAnnotation:
    index: int  # 1..n within the frame, in annotation order of the visible objects
    class_id: int  # STTran id (person = 1)
    box: tuple[float, float, float, float]  # xyxy pixels
    attention: tuple[int, ...]  # kind-local indices
    spatial: tuple[int, ...]
    contacting: tuple[int, ...]

    @property
    def class_name(self) -> str:
        return vocab.OBJECT_CLASSES[self.class_id - 1]

    @property
    def num_relations(self) -> int:
        return len(self.attention) + len(self.spatial) + len(self.contacting)


@dataclass(frozen=True)
class FrameAnnotation:
    key: str  # "VID.mp4/000123.png"
    person_boxes: tuple[tuple[float, float, float, float], ...]  # AG has exactly one
    size: tuple[int, int]  # (w, h)
    objects: tuple[ObjectAnnotation, ...]

    @property
    def person_box(self) -> tuple[float, float, float, float]:
        return self.person_boxes[0]

    @property
    def video_id(self) -> str:
        return self.key.split("/")[0]


@dataclass
class ActionGenome:
    root: Path
    videos: dict[str, dict[str, list[FrameAnnotation]]] = field(default_factory=dict)

    def split(self, name: str) -> dict[str, list[FrameAnnotation]]:
        return self.videos.get(name, {})

    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for split in SPLITS:
            videos = self.split(split)
            frames = [f for v in videos.values() for f in v]
            out[split] = {
                "videos": len(videos),
                "frames": len(frames),
                "objects": sum(len(f.objects) for f in frames),
                "relations": sum(o.num_relations for f in frames for o in f.objects),
            }
        return out


def read_class_file(path: Path, expected: tuple[str, ...], canonical) -> list[str]:
    if not path.exists():
        raise DataError(f"{path}: file not found; expected the Action Genome layout.")
    names = [canonical(line.strip()) for line in path.read_text().splitlines() if line.strip()]
    if tuple(names) != expected:
        raise DataError(f"{path}: expected the {len(expected)} Action Genome names in AG order, "
                        f"found {len(names)} lines that differ.")
    return names


def _labels(obj: dict, kind: str, key: str) -> tuple[int, ...]:
    names = obj.get(f"{kind}_relationship")
    if not isinstance(names, list | tuple):
        raise DataError(f"{key}: visible object '{obj.get('class')}' has no "
                        f"{kind}_relationship list.")
    table = vocab.KINDS[kind]
    try:
        return tuple(table.index(n) for n in names)
    except ValueError as exc:
        raise DataError(f"{key}: unknown {kind} predicate in {names!r}.") from exc


def _object(obj: dict, index: int, key: str) -> ObjectAnnotation:
    if not isinstance(obj, dict) or "class" not in obj:
        raise DataError(f"{key}: object entry is not a dict with a 'class' field.")
    if obj["class"] not in vocab.OBJECT_CLASSES[1:]:
        raise DataError(f"{key}: unknown object class {obj['class']!r}.")
    box = obj.get("bbox")
    if box is None or len(box) != 4:
        raise DataError(f"{key}: visible object '{obj['class']}' has no (x, y, w, h) bbox.")
    x, y, w, h = (float(v) for v in box)
    return ObjectAnnotation(index, vocab.object_id(obj["class"]), (x, y, x + w, y + h),
                            _labels(obj, "attention", key), _labels(obj, "spatial", key),
                            _labels(obj, "contacting", key))


def _person_box(entry: dict, key: str) -> np.ndarray:
    if not isinstance(entry, dict) or "bbox" not in entry:
        raise DataError(f"person_bbox.pkl: {key}: entry has no 'bbox' field.")
    bbox = np.asarray(entry["bbox"], dtype=np.float64)
    if bbox.ndim != 2 or bbox.shape[1] != 4:
        raise DataError(f"person_bbox.pkl: {key}: bbox should be a (k, 4) array, "
                        f"got shape {bbox.shape}.")
    return bbox


def load_action_genome(root: Path, min_frames: int = 3) -> ActionGenome:
    """Load and filter an AG directory exactly as STTran's ``AG`` dataset does."""
    ann = root / "annotations"
    if not ann.is_dir():
        raise DataError(f"{root}: no annotations/ folder; expected the Action Genome layout.")
    read_class_file(ann / "object_classes.txt", vocab.OBJECT_CLASSES,
                    vocab.canonical_object_name)
    read_class_file(ann / "relationship_classes.txt", vocab.PREDICATES,
                    vocab.canonical_predicate_name)
    person = load_pickle(ann / "person_bbox.pkl")
    objects = load_pickle(ann / "object_bbox_and_relationship.pkl")
    if not isinstance(person, dict) or not isinstance(objects, dict):
        raise DataError(f"{ann}: both pickles must hold a dict keyed by 'VID.mp4/FRAME.png'.")

    grouped: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for key in person:
        entries = objects.get(key)
        if not entries:
            raise DataError(f"object_bbox_and_relationship.pkl: no objects for frame {key!r}.")
        split = (entries[0].get("metadata") or {}).get("set")
        if split not in SPLITS:
            raise DataError(f"{key}: metadata.set is {split!r}, expected 'train' or 'test'.")
        if any(e.get("visible") for e in entries):
            grouped[split].setdefault(key.split("/")[0], []).append(key)

    dataset = ActionGenome(root)
    for split, videos in grouped.items():
        kept_videos: dict[str, list[FrameAnnotation]] = {}
        for video, keys in videos.items():
            frames = []
            for key in keys:
                bbox = _person_box(person[key], key)
                if bbox.shape[0] == 0:
                    continue
                visible = [e for e in objects[key] if e.get("visible")]
                objs = tuple(_object(o, i + 1, key) for i, o in enumerate(visible))
                size = tuple(int(v) for v in person[key].get("bbox_size", (0, 0)))
                boxes = tuple(tuple(float(v) for v in row) for row in bbox)
                frames.append(FrameAnnotation(key, boxes, size, objs))
            if len(frames) >= min_frames:
                kept_videos[video] = frames
        dataset.videos[split] = kept_videos
    return dataset
