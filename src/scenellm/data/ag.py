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

from scenellm.data import ag_entries as entries
from scenellm.data import vocab
from scenellm.data.frame_files import check_frames, check_links
from scenellm.data.frame_keys import check_frame_list, check_key, read_text
from scenellm.data.unpickle import load_pickle
from scenellm.errors import DataError

SPLITS = ("train", "test")


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected the Action Genome layout.")
    names = [canonical(line.strip()) for line in read_text(path).splitlines() if line.strip()]
    if tuple(names) != expected:
        raise DataError(f"{path}: expected the {len(expected)} Action Genome names in AG order, "
                        f"found {len(names)} lines that differ.")
    return names


def _object(obj: dict, index: int, key: str, size: tuple[int, int], source: str
            ) -> ObjectAnnotation:
    name = entries.object_class(obj, key, source)
    return ObjectAnnotation(index, vocab.object_id(name),
                            entries.object_box(obj, key, size, source),
                            *(entries.labels(obj, kind, key, source) for kind in vocab.KINDS))


def _frame(key: str, person: dict, objects: list[dict], ann: Path) -> FrameAnnotation:
    """A frame's person boxes and visible objects, each entry checked; exact duplicates
    (same class and box twice) are refused."""
    boxes, size = entries.person_boxes(person, key, str(ann / entries.PERSON))
    source = str(ann / entries.OBJECTS)
    visible = [o for o in objects if o["visible"]]
    objs = tuple(_object(o, i + 1, key, size, source) for i, o in enumerate(visible))
    seen = set()
    for o in objs:
        if (o.class_id, o.box) in seen:
            raise entries.fail(source, key, f"object {o.class_name!r} with box {o.box} appears "
                                            "twice; remove the duplicate")
        seen.add((o.class_id, o.box))
    return FrameAnnotation(key, boxes, size, objs)


def _read_pickles(ann: Path) -> tuple[dict, dict]:
    """Both pickles: dicts over the same normal frame keys (a one-line error otherwise)."""
    person = load_pickle(ann / entries.PERSON)
    objects = load_pickle(ann / entries.OBJECTS)
    for name, value in ((entries.PERSON, person), (entries.OBJECTS, objects)):
        if not isinstance(value, dict):
            raise DataError(f"{ann / name}: must hold a dict keyed by 'VID.mp4/FRAME.png', got "
                            f"a {type(value).__name__}.")
        for key in value:
            check_key(key, str(ann / name))
    missing = next((k for k in person if k not in objects), None)
    if missing is not None:
        raise DataError(f"{ann / entries.OBJECTS}: no objects for frame {missing!r} of "
                        f"{entries.PERSON}; both pickles must annotate the same frames.")
    extra = next((k for k in objects if k not in person), None)
    if extra is not None:
        raise DataError(f"{ann / entries.OBJECTS}: frame {extra!r} is not in {entries.PERSON}; "
                        "both pickles must annotate the same frames.")
    return person, objects


def load_action_genome(root: Path, min_frames: int = 3) -> ActionGenome:
    """Load, check and filter an AG directory exactly as STTran's ``AG`` dataset does.

    Before filtering: no link leaves the root, the class files and ``frame_list.txt`` are
    the AG ones, every pickle entry has its documented shape. After: every kept frame is an
    image of its ``bbox_size`` inside the root (:mod:`scenellm.data.frame_files`).
    """
    ann = root / "annotations"
    if not root.is_dir():
        raise DataError(f"{root}: data root not found; point data.root at an Action Genome "
                        "directory (annotations/, frames/).")
    if not ann.is_dir():
        raise DataError(f"{root}: no annotations/ folder; expected the Action Genome layout.")
    check_links(root)
    read_class_file(ann / "object_classes.txt", vocab.OBJECT_CLASSES,
                    vocab.canonical_object_name)
    read_class_file(ann / "relationship_classes.txt", vocab.PREDICATES,
                    vocab.canonical_predicate_name)
    person, objects = _read_pickles(ann)
    check_frame_list(ann / "frame_list.txt", person)

    grouped: dict[str, dict[str, list[FrameAnnotation]]] = {s: {} for s in SPLITS}
    for key in list(person):  # each raw entry is dropped once read: memory peaks at the pickles
        frame_objects = entries.frame_objects(objects.pop(key), key, str(ann / entries.OBJECTS))
        frame = _frame(key, person.pop(key), frame_objects, ann)
        split = frame_objects[0]["metadata"]["set"]
        if any(o["visible"] for o in frame_objects) and frame.person_boxes:
            grouped[split].setdefault(frame.video_id, []).append(frame)

    dataset = ActionGenome(root)
    for split, videos in grouped.items():
        dataset.videos[split] = {v: f for v, f in videos.items() if len(f) >= min_frames}
    check_frames(root, ((f.key, f.size) for v in dataset.videos.values()
                        for frames in v.values() for f in frames))
    return dataset
