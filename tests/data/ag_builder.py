"""Build small Action Genome directories by hand for loader tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from scenellm.data import vocab


def obj(cls="cup/glass/bottle", bbox=(10.0, 10.0, 20.0, 20.0), visible=True, split="train",
        att=("looking_at",), spa=("in_front_of",), con=("holding",)):
    return {"class": cls, "bbox": bbox if visible else None, "visible": visible,
            "attention_relationship": list(att) if visible else None,
            "spatial_relationship": list(spa) if visible else None,
            "contacting_relationship": list(con) if visible else None,
            "metadata": {"tag": "x", "set": split}}


def person(box=(5.0, 5.0, 60.0, 80.0), size=(160, 120)):
    bbox = np.zeros((0, 4), np.float32) if box is None else np.array([box], np.float32)
    return {"bbox": bbox, "bbox_score": np.ones(len(bbox), np.float32), "bbox_size": size,
            "bbox_mode": "xyxy"}


def write_frames(root: Path, person_bbox: dict) -> None:
    """A flat grey PNG of each frame's ``bbox_size`` under ``frames/``."""
    for key, entry in person_bbox.items():
        path = root / "frames" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", tuple(entry["bbox_size"]), (128, 128, 128)).save(path)


def write_ag(root: Path, person_bbox: dict, objects: dict, frames: bool = True) -> Path:
    """The AG layout: class files, both pickles, ``frame_list.txt`` and (``frames``) images."""
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "object_classes.txt").write_text("\n".join(vocab.RAW_OBJECT_NAMES) + "\n")
    (ann / "relationship_classes.txt").write_text("\n".join(vocab.RAW_PREDICATE_NAMES) + "\n")
    with open(ann / "person_bbox.pkl", "wb") as f:
        pickle.dump(person_bbox, f)
    with open(ann / "object_bbox_and_relationship.pkl", "wb") as f:
        pickle.dump(objects, f)
    (ann / "frame_list.txt").write_text("\n".join(person_bbox) + "\n")
    if frames:
        write_frames(root, person_bbox)
    return root


def video(vid: str, n: int, split="train", objects_per_frame=None, person_boxes=None):
    """``n`` frames of one video; per-frame object lists and person boxes overridable."""
    pb, ob = {}, {}
    for i in range(n):
        key = f"{vid}.mp4/{i * 5:06d}.png"
        pb[key] = person(*([] if person_boxes is None else [person_boxes[i]]))
        ob[key] = objects_per_frame[i] if objects_per_frame else [obj(split=split)]
        for o in ob[key]:
            o["metadata"]["set"] = split
    return pb, ob
