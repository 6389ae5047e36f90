"""Independent checks for the synthetic AG data: an allow-list unpickler and a replay of
the world rules over the per-(video, object) label sequences written to disk."""

from __future__ import annotations

import pickle
from pathlib import Path

NUMPY_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }
)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Loads builtins (which need no global lookup) and the numpy array globals only."""

    def find_class(self, module: str, name: str):
        if (module, name) not in NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def load(path: Path):
    with open(path, "rb") as handle:
        return NumpyOnlyUnpickler(handle).load()


def annotations(root: Path) -> tuple[dict, dict]:
    ann = root / "annotations"
    return load(ann / "person_bbox.pkl"), load(ann / "object_bbox_and_relationship.pkl")


def sequences(objects: dict) -> dict[tuple[str, str], list[dict]]:
    """(video, class) → the object's entries over the video's frames, in frame order."""
    out: dict[tuple[str, str], list[dict]] = {}
    for key, entries in objects.items():
        for e in entries:
            out.setdefault((key.split("/")[0], e["class"]), []).append(e)
    return out


def _contact(e: dict | None) -> bool:
    return e is not None and e["visible"] and e["contacting_relationship"] != ["not_contacting"]


def _streak(seq: list[dict], t: int) -> list[dict]:
    """The frames before ``t`` in the pair's current unbroken contact streak."""
    k = t
    while k > 0 and _contact(seq[k - 1]):
        k -= 1
    return seq[k:t]


def violations(objects: dict) -> list[str]:
    """Every place where the written labels break a world rule (empty when all hold)."""
    bad = []
    for (video, cls), seq in sequences(objects).items():
        for t, e in enumerate(seq):
            where = f"{video} {cls} frame {t}"
            if not e["visible"]:
                if (
                    any(
                        e[f"{k}_relationship"] is not None
                        for k in ("attention", "spatial", "contacting")
                    )
                    or e["bbox"] is not None
                ):
                    bad.append(f"{where}: invisible but has a bbox or labels")
                continue
            att, spa, con = (e[f"{k}_relationship"] for k in ("attention", "spatial", "contacting"))
            prior = _streak(seq, t)
            if len(att) != 1:
                bad.append(f"{where}: attention {att}")
            if not spa or len(set(spa)) != len(spa):
                bad.append(f"{where}: spatial {spa}")
            if "not_contacting" in con and len(con) > 1:
                bad.append(f"{where}: not_contacting with {con}")
            if "holding" in con and len(prior) < 3:
                bad.append(f"{where}: holding after {len(prior)} contact frames")
            if "sitting_on" in con and (
                cls not in ("chair", "sofa/couch", "bed") or len(prior) < 2
            ):
                bad.append(f"{where}: sitting_on after {len(prior)} settled frames")
            sat = sum("sitting_on" in p["contacting_relationship"] for p in prior)
            if "lying_on" in con and (cls not in ("sofa/couch", "bed") or sat < 2):
                bad.append(f"{where}: lying_on after {sat} sitting frames")
            for label, classes in (
                ("drinking_from", ("cup/glass/bottle",)),
                ("eating", ("food", "sandwich")),
            ):
                if label in con and (
                    cls not in classes
                    or not prior
                    or "holding" not in prior[-1]["contacting_relationship"]
                ):
                    bad.append(f"{where}: {label} without a held period")
            for label, classes in (
                ("writing_on", ("paper/notebook",)),
                ("wiping", ("towel",)),
                ("carrying", None),
            ):
                if label in con and ("holding" not in con or (classes and cls not in classes)):
                    bad.append(f"{where}: {label} without holding")
            carried = sum("carrying" in p["contacting_relationship"] for p in prior)
            if "have_it_on_the_back" in con and (cls != "bag" or carried < 2):
                bad.append(f"{where}: on the back after {carried} carrying frames")
            if "wearing" in con and cls not in ("clothes", "shoe"):
                bad.append(f"{where}: wearing a {cls}")
            if "covered_by" in con and cls != "blanket":
                bad.append(f"{where}: covered by a {cls}")
    return bad
