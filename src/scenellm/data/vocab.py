"""Action Genome vocabularies, in AG order.

Object class ids follow STTran's convention: id 0 is ``__background__``, so ``person`` is 1
and the 35 object classes are 2..36 (``OBJECT_CLASSES[i - 1]`` is the name of id ``i``).
Predicate ids index ``PREDICATES`` (0..25); within a kind, ``ATTENTION``, ``SPATIAL`` and
``CONTACTING`` give the kind-local order used by the prediction heads.
"""

from __future__ import annotations

RAW_OBJECT_NAMES: tuple[str, ...] = (
    "person", "bag", "bed", "blanket", "book", "box", "broom", "chair", "closetcabinet",
    "clothes", "cupglassbottle", "dish", "door", "doorknob", "doorway", "floor", "food",
    "groceries", "laptop", "light", "medicine", "mirror", "papernotebook", "phonecamera",
    "picture", "pillow", "refrigerator", "sandwich", "shelf", "shoe", "sofacouch", "table",
    "television", "towel", "vacuum", "window",
)
_OBJECT_RENAMES = {
    "closetcabinet": "closet/cabinet",
    "cupglassbottle": "cup/glass/bottle",
    "papernotebook": "paper/notebook",
    "phonecamera": "phone/camera",
    "sofacouch": "sofa/couch",
}
OBJECT_CLASSES: tuple[str, ...] = tuple(_OBJECT_RENAMES.get(n, n) for n in RAW_OBJECT_NAMES)
STTRAN_OBJECT_CLASSES: tuple[str, ...] = ("__background__", *OBJECT_CLASSES)
PERSON_ID = 1

ATTENTION: tuple[str, ...] = ("looking_at", "not_looking_at", "unsure")
SPATIAL: tuple[str, ...] = (
    "above", "beneath", "in_front_of", "behind", "on_the_side_of", "in",
)
CONTACTING: tuple[str, ...] = (
    "carrying", "covered_by", "drinking_from", "eating", "have_it_on_the_back", "holding",
    "leaning_on", "lying_on", "not_contacting", "other_relationship", "sitting_on",
    "standing_on", "touching", "twisting", "wearing", "wiping", "writing_on",
)
PREDICATES: tuple[str, ...] = (*ATTENTION, *SPATIAL, *CONTACTING)
KINDS: dict[str, tuple[str, ...]] = {
    "attention": ATTENTION,
    "spatial": SPATIAL,
    "contacting": CONTACTING,
}
RAW_PREDICATE_NAMES: tuple[str, ...] = tuple(p.replace("_", "") for p in PREDICATES)


def object_id(name: str) -> int:
    """STTran class id of an object name as written in the pickles (person → 1)."""
    return OBJECT_CLASSES.index(name) + 1


def canonical_object_name(raw: str) -> str:
    """Map a raw ``object_classes.txt`` name to the name the pickles use."""
    return _OBJECT_RENAMES.get(raw, raw)


def canonical_predicate_name(raw: str) -> str:
    """Map a raw ``relationship_classes.txt`` name to the underscored pickle name."""
    for name in PREDICATES:
        if name.replace("_", "") == raw:
            return name
    return raw
