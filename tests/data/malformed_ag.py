"""A catalogue of malformed Action Genome data: each kind damages a copy of a valid
dataset in one way, and names the rule its one-line error must state.

``Damage`` gets the copy's root, a folder ``outside`` it (holding ``secret.png``, a valid
frame of the right size, and ``passwd``) and a frame key that the loader keeps.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class Site:
    root: Path
    outside: Path
    key: str  # a kept frame

    @property
    def ann(self) -> Path:
        return self.root / "annotations"

    @property
    def frame(self) -> Path:
        return self.root / "frames" / self.key


@dataclass(frozen=True)
class Kind:
    name: str
    damage: Callable[[Site], None]
    rule: str  # regex the error message must match
    names_key: bool = False  # the message names the damaged frame key


def _edit(path: Path, change: Callable) -> None:
    with open(path, "rb") as f:
        data = pickle.load(f)  # our own valid file
    data = change(data) or data
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)


def person(change: Callable[[dict, str], object]) -> Callable[[Site], None]:
    """Damage the kept frame's ``person_bbox.pkl`` entry: ``change(entry, key)``."""
    return lambda s: _edit(s.ann / "person_bbox.pkl", lambda d: change(d[s.key], s.key) and None)


def objects(change: Callable[[dict, str], object]) -> Callable[[Site], None]:
    """Damage the object pickle: ``change(whole dict, key)``."""
    return lambda s: _edit(s.ann / "object_bbox_and_relationship.pkl",
                           lambda d: change(d, s.key) and None)


def _visible(entries: list[dict]) -> dict:
    return next(o for o in entries if o["visible"])


def first_object(**values) -> Callable[[Site], None]:
    """Change fields of the kept frame's first visible object."""
    return objects(lambda d, k: _visible(d[k]).update(values))


def rename_key(new: Callable[[Site], object]) -> Callable[[Site], None]:
    """Give the kept frame another key in both pickles and frame_list.txt."""

    def damage(s: Site) -> None:
        name = new(s)
        for pkl in ("person_bbox.pkl", "object_bbox_and_relationship.pkl"):
            _edit(s.ann / pkl, lambda d: {name if k == s.key else k: v for k, v in d.items()})
        lines = (s.ann / "frame_list.txt").read_text().splitlines()
        text = "\n".join(str(name) if line == s.key else line for line in lines)
        (s.ann / "frame_list.txt").write_text(text + "\n")

    return damage


def relink(target: Callable[[Site], Path]) -> Callable[[Site], None]:
    def damage(s: Site) -> None:
        s.frame.unlink()
        s.frame.symlink_to(target(s))

    return damage


def write(path: Callable[[Site], Path], data: bytes) -> Callable[[Site], None]:
    return lambda s: path(s).write_bytes(data)


def frames_outside(s: Site) -> None:
    shutil.move(s.root / "frames", s.outside / "frames")
    (s.root / "frames").symlink_to(s.outside / "frames")


def pickle_outside(s: Site) -> None:
    shutil.move(s.ann / "person_bbox.pkl", s.outside / "person_bbox.pkl")
    (s.ann / "person_bbox.pkl").symlink_to(s.outside / "person_bbox.pkl")


def gif_frame(s: Site) -> None:
    with Image.open(s.frame) as image:
        image.save(s.frame, format="GIF")


def corrupt_chunk(s: Site) -> None:
    """Flip a byte inside the image data: the file stays complete, its CRC fails."""
    data = bytearray(s.frame.read_bytes())
    at = data.index(b"IDAT") + 8
    data[at] ^= 0xFF
    s.frame.write_bytes(bytes(data))


def duplicate_object(d: dict, key: str) -> None:
    d[key].append(dict(_visible(d[key])))


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def cut(path: Callable[[Site], Path], keep: float) -> Callable[[Site], None]:
    def damage(s: Site) -> None:
        data = path(s).read_bytes()
        path(s).write_bytes(data[: int(len(data) * keep)])

    return damage


FRAME, PERSON = (lambda s: s.frame), (lambda s: s.ann / "person_bbox.pkl")
OBJECTS = lambda s: s.ann / "object_bbox_and_relationship.pkl"  # noqa: E731
CLASSES = lambda s: s.ann / "object_classes.txt"  # noqa: E731
FRAME_LIST = lambda s: s.ann / "frame_list.txt"  # noqa: E731
LATIN1 = "person\nbag\ncaf\xe9\n".encode("latin1")

KINDS = [
    # frames on disk
    Kind("missing frame image", lambda s: s.frame.unlink(), "is missing", True),
    Kind("missing frames folder", lambda s: shutil.rmtree(s.root / "frames"), "frames: folder not found"),
    Kind("text file named .png", write(FRAME, b"hello, not an image\n"), "not a PNG or JPEG file", True),
    Kind("truncated PNG", cut(FRAME, 0.6), "does not decode", True),
    Kind("empty frame file", write(FRAME, b""), "not a PNG or JPEG file", True),
    Kind("GIF named .png", gif_frame, "not a PNG or JPEG file", True),
    Kind("PNG with a corrupt chunk", corrupt_chunk, "does not decode", True),
    Kind("frame of another size", lambda s: Image.new("RGB", (33, 33)).save(s.frame), "is 33x33 pixels but its bbox_size", True),
    Kind("frame is a folder", lambda s: (s.frame.unlink(), s.frame.mkdir()), "not a regular file", True),
    Kind("symlink to an image outside the root", relink(lambda s: s.outside / "secret.png"), "links outside the data root"),
    Kind("symlink to /etc/passwd", relink(lambda s: Path("/etc/passwd")), "links outside the data root"),
    Kind("dangling frame symlink", relink(lambda s: s.root / "frames" / "gone.png"), "dangling symlink"),
    Kind("symlink loop", relink(lambda s: s.frame), "symlink loop"),
    Kind("frames folder linked outside the root", frames_outside, "links outside the data root"),
    Kind("pickle linked outside the root", pickle_outside, "links outside the data root"),
    # frame keys
    Kind("key with .. escaping the root", rename_key(lambda s: "../../outside/secret.png"), r"'\.\.' part"),
    Kind("absolute key", rename_key(lambda s: str(s.outside / "secret.png")), "absolute path"),
    Kind("alias key VID/./FRAME", rename_key(lambda s: s.key.replace("/", "/./")), r"'\.' or '\.\.' part"),
    Kind("video id with a space", rename_key(lambda s: "my video.mp4/000001.png"), "no spaces"),
    Kind("key with a newline", rename_key(lambda s: s.key.replace(".png", "\n.png")), "not 1-128 letters"),
    Kind("key that is not a string", rename_key(lambda s: 7), "is of type int, not a string"),
    Kind("frame name without image suffix", rename_key(lambda s: s.key.replace(".png", ".txt")), "does not end in"),
    Kind("hidden video folder", rename_key(lambda s: "." + s.key), "starting with a letter or digit"),
    # person_bbox.pkl entries
    Kind("person bbox as a string", person(lambda e, k: e.update(bbox="1 2 3 4")), r"bbox must be a \(k, 4\) array", True),
    Kind("person bbox of 3 columns", person(lambda e, k: e.update(bbox=[[1.0, 2.0, 3.0]])), r"\(k, 4\) array", True),
    Kind("person bbox with NaN", person(lambda e, k: e.update(bbox=[[float("nan"), 1, 9, 9]])), "not finite", True),
    Kind("person bbox far outside", person(lambda e, k: e.update(bbox=[[5e3, 5e3, 6e3, 6e3]])), "far outside", True),
    Kind("bbox_size as strings", person(lambda e, k: e.update(bbox_size=("64", "48"))), "bbox_size must be", True),
    Kind("bbox_size 10**30", person(lambda e, k: e.update(bbox_size=(10**30, 48))), "bbox_size must be", True),
    Kind("bbox_size zero", person(lambda e, k: e.update(bbox_size=(0, 48))), "bbox_size must be", True),
    Kind("bbox_size missing", person(lambda e, k: e.pop("bbox_size")), "bbox_size must be", True),
    Kind("person entry not a dict", lambda s: _edit(s.ann / "person_bbox.pkl", lambda d: d.update({s.key: [1, 2]})), "entry must be a dict", True),
    Kind("person pickle holds a list", lambda s: _edit(s.ann / "person_bbox.pkl", lambda d: list(d.items())), "must hold a dict"),
    # object_bbox_and_relationship.pkl entries
    Kind("objects given as a dict", objects(lambda d, k: d.update({k: d[k][0]})), "objects must be a list", True),
    Kind("non-dict object entry", objects(lambda d, k: d[k].append("chair")), "object entry must be a dict", True),
    Kind("empty object list", objects(lambda d, k: d.update({k: []})), "no objects", True),
    Kind("metadata as a string", first_object(metadata="train"), "metadata must be a dict", True),
    Kind("unknown split", objects(lambda d, k: d[k][0]["metadata"].update(set="val")), "metadata.set", True),
    Kind("visible as a string", first_object(visible="yes"), "'visible' must be true or false", True),
    Kind("unknown object class", first_object(**{"class": "unicorn"}), "unknown object class", True),
    Kind("object bbox as a string", first_object(bbox="abcd"), r"bbox of four finite numbers", True),
    Kind("object bbox of 3 numbers", first_object(bbox=(1.0, 2.0, 3.0)), "four finite numbers", True),
    Kind("object bbox infinite", first_object(bbox=(1.0, 2.0, float("inf"), 3.0)), "four finite numbers", True),
    Kind("object bbox beyond float range", first_object(bbox=(1, 2, 10**400, 3)), "four finite numbers", True),
    Kind("object box far outside", first_object(bbox=(5000.0, 5000.0, 10.0, 10.0)), "far outside", True),
    Kind("unknown predicate", first_object(spatial_relationship=["near"]), "unknown spatial predicate", True),
    Kind("relationship list as a string", first_object(attention_relationship="looking_at"), "attention_relationship list", True),
    Kind("duplicated object", objects(duplicate_object), "appears twice", True),
    Kind("frame only in the object pickle", objects(lambda d, k: d.update({"ZZZZZ.mp4/000001.png": d[k]})), "not in person_bbox.pkl"),
    Kind("frame missing from the object pickle", objects(lambda d, k: d.pop(k)), "no objects for frame", True),
    # pickle files
    Kind("truncated pickle", cut(PERSON, 0.5), "not a readable pickle"),
    Kind("pickle allocating by bytearray", write(PERSON, b"cbuiltins\nbytearray\n(J\x00/hYtR."), "refuses to load global 'builtins.bytearray'"),
    Kind("pickle allocating by numpy shape", write(PERSON, b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(J\x00/hYtU\x01btR."), "refused: _reconstruct"),
    Kind("pickle running a command", lambda s: PERSON(s).write_bytes(pickle.dumps(Payload(s.outside / "pwned"))), "refuses to load global 'posix.system'"),
    # text files
    Kind("non-UTF-8 object_classes.txt", write(CLASSES, LATIN1), "not UTF-8"),
    Kind("non-UTF-8 relationship_classes.txt", write(lambda s: s.ann / "relationship_classes.txt", LATIN1), "not UTF-8"),
    Kind("object classes out of order", lambda s: CLASSES(s).write_text("bag\nperson\n"), "AG order"),
    Kind("frame_list.txt missing", lambda s: FRAME_LIST(s).unlink(), "frame_list.txt: file not found"),
    Kind("frame_list.txt lists an unknown frame", lambda s: FRAME_LIST(s).open("a").write("ZZZZZ.mp4/000001.png\n"), "not in person_bbox.pkl"),
    Kind("frame_list.txt misses a frame", lambda s: FRAME_LIST(s).write_text("\n".join(line for line in FRAME_LIST(s).read_text().splitlines() if line != s.key)), "is not listed", True),
    Kind("frame_list.txt lists a frame twice", lambda s: FRAME_LIST(s).open("a").write(s.key + "\n"), "listed twice", True),
    Kind("frame_list.txt not UTF-8", lambda s: FRAME_LIST(s).open("ab").write(b"\xff\xfe\n"), "not UTF-8"),
    Kind("frame_list.txt with a bad key", lambda s: FRAME_LIST(s).open("a").write("VID.mp4/./x.png\n"), r"'\.' or '\.\.' part"),
    # layout
    Kind("no annotations folder", lambda s: shutil.rmtree(s.ann), "no annotations/ folder"),
]  # fmt: skip
