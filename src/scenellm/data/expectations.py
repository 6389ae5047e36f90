"""The expectation suites of the ``prepare`` data guard, one per table.

Each expectation states one fact the later stages rely on; its ``description`` is the
one-line sentence a failure report shows. The suites follow STTran's Action Genome loader:
one person box per kept frame, boxes in xyxy pixels inside the frame, object class ids
2..36 (``vocab.STTRAN_OBJECT_CLASSES``), predicate ids indexing ``vocab.PREDICATES``. Frame
keys and video ids follow :mod:`scenellm.data.frame_keys`, and no object appears twice in a
frame. (The loader has already refused keys that escape the root, frames that are missing,
unreadable or of another size, and boxes far outside their frame; these rules are its
second line, on the tables every later stage reads.)

Label counts per object: STTran trains attention with a cross-entropy on one label per
object (``attention_gt`` squeezed to a scalar), so ``n_attention`` must be exactly 1. Spatial
and contacting are multi-label (multi-label margin or BCE loss), which accept an empty list,
so those counts are only bounded by the size of their kind (0..6 and 0..17).

Consistency checks (class id of the class name, predicate id and kind of the predicate) run
only on rows whose values are each valid (``row_condition``), so a single bad value fails a
single expectation. Checks across tables (an object's frame exists in ``frames``,
``num_objects`` equals the object count, one relation row per ``n_*`` label) are left to the
``prepare`` stage that builds the tables from one another.

Great Expectations is imported inside :func:`build_suites` only, so importing this module
stays cheap.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from scenellm.data import vocab
from scenellm.data.ag import SPLITS
from scenellm.data.ag_entries import MAX_SIDE
from scenellm.data.frame_keys import KEY_PATTERN, VIDEO_PATTERN
from scenellm.data.tables import FRAME_COLUMNS, OBJECT_COLUMNS, RELATION_COLUMNS

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

COLUMNS: dict[str, list[str]] = {
    "frames": FRAME_COLUMNS,
    "objects": OBJECT_COLUMNS,
    "relations": RELATION_COLUMNS,
}
# Columns that name a row in a failure report and in the Data Docs.
INDEX_COLUMNS: dict[str, list[str]] = {
    "frames": ["frame_key"],
    "objects": ["frame_key", "object_idx"],
    "relations": ["frame_key", "object_idx", "kind", "predicate"],
}
OBJECT_NAMES = vocab.OBJECT_CLASSES[1:]  # person is the subject, never an object row
OBJECT_IDS = (2, len(vocab.STTRAN_OBJECT_CLASSES) - 1)  # 2..36
PREDICATE_IDS = (0, len(vocab.PREDICATES) - 1)  # 0..25


@functools.cache
def _pairs_expectation() -> type:
    """``expect_column_pair_values_to_be_in_set`` over a vectorized metric.

    GX 1.24's pandas metric for that expectation walks the rows with ``iterrows`` (~5 s for
    15,000 relations, minutes at Action Genome scale) and leaves ``row_condition`` out of its
    domain, so the row filter is ignored and a failure ends in an invalid result (negative
    ``missing_count``). This metric looks the (A, B) pairs up in a ``MultiIndex`` and keeps
    the row filter. Same arguments and semantics otherwise (a missing value is never in the
    set), same Data Docs rendering (renderers are inherited). Defined once per process,
    since GX registers metrics and expectations by name when their classes are created.
    """
    import pandas as pd
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations import ExpectColumnPairValuesToBeInSet
    from great_expectations.expectations.metrics.map_metric_provider import (
        ColumnPairMapMetricProvider,
        column_pair_condition_partial,
    )

    class ColumnPairValuesInPairs(ColumnPairMapMetricProvider):
        condition_metric_name = "column_pair_values.in_pairs"
        condition_value_keys = ("value_pairs_set",)
        # The base class's domain keys include row_condition, which GX's own metric omits.

        @column_pair_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column_A, column_B, **kwargs):  # noqa: N803 (GX's argument names)
            allowed = pd.MultiIndex.from_tuples([tuple(p) for p in kwargs["value_pairs_set"]])
            found = pd.MultiIndex.from_arrays([column_A, column_B]).isin(allowed)
            return pd.Series(found, index=column_A.index)

    class ExpectColumnPairValuesToBeInPairs(ExpectColumnPairValuesToBeInSet):
        """Each (column_A, column_B) row is one of ``value_pairs_set``."""

        map_metric = "column_pair_values.in_pairs"

    return ExpectColumnPairValuesToBeInPairs


def _box(gxe: Any, x1: str, y1: str, x2: str, y2: str, what: str) -> list:
    """Inside the frame with positive size: ``0 <= x1 < x2 <= width``, ``0 <= y1 < y2 <= height``.

    Pair checks skip rows with a missing value; the not-null checks report those.
    """
    pair = dict(ignore_row_if="either_value_is_missing")
    return [
        gxe.ExpectColumnValuesToBeBetween(column=x1, min_value=0, description=f"{what} x1 ≥ 0"),
        gxe.ExpectColumnValuesToBeBetween(column=y1, min_value=0, description=f"{what} y1 ≥ 0"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="width", column_B=x2, or_equal=True, **pair,
            description=f"{what} x2 ≤ frame width",
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="height", column_B=y2, or_equal=True, **pair,
            description=f"{what} y2 ≤ frame height",
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=x2, column_B=x1, **pair, description=f"{what} has positive width (x2 > x1)"
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=y2, column_B=y1, **pair, description=f"{what} has positive height (y2 > y1)"
        ),
    ]  # fmt: skip


def _not_null(gxe: Any, table: str, columns: tuple[str, ...]) -> list:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"{table}.{c} is never missing")
        for c in columns
    ]


def _frames(gxe: Any) -> list:
    box = ("person_x1", "person_y1", "person_x2", "person_y2")
    return [
        *_not_null(gxe, "frames", ("frame_key", "split", *box)),
        gxe.ExpectColumnValuesToBeUnique(
            column="frame_key", description="one person box per kept frame (frame_key unique)"
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="frame_key", regex=KEY_PATTERN,
            description="frame_key is a normal VIDEO/FRAME.png key (no '..', '.', spaces)",
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="video_id", regex=VIDEO_PATTERN,
            description="video_id is letters, digits, '.', '_' or '-' (no spaces)",
        ),
        *[
            gxe.ExpectColumnValuesToBeBetween(
                column=c, min_value=1, max_value=MAX_SIDE,
                description=f"frame {c} is 1..{MAX_SIDE} pixels",
            )
            for c in ("width", "height")
        ],
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=list(SPLITS), description="split is train or test"
        ),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="split", value_set=list(SPLITS), description="every split is non-empty"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="num_objects", min_value=1,
            description="a kept frame has at least one visible object",
        ),
        *_box(gxe, *box, what="person box"),
    ]  # fmt: skip


def _objects(gxe: Any) -> list:
    from great_expectations.expectations.row_conditions import Column

    pairs = _pairs_expectation()
    cid = Column("class_id")
    known = (
        Column("class_name").is_in(OBJECT_NAMES) & (cid >= OBJECT_IDS[0]) & (cid <= OBJECT_IDS[1])
    )
    return [
        *_not_null(gxe, "objects", ("frame_key", "class_name", "x1", "y1", "x2", "y2")),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["frame_key", "object_idx"],
            description="one row per (frame_key, object_idx)",
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["frame_key", "class_name", "x1", "y1", "x2", "y2"],
            description="no object twice in a frame (same class and box)",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="object_idx", min_value=1, description="object_idx counts from 1"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="class_name", value_set=list(OBJECT_NAMES),
            description="class_name is an Action Genome object class",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="class_id", min_value=OBJECT_IDS[0], max_value=OBJECT_IDS[1],
            description="class_id is an STTran object id (2..36)",
        ),
        pairs(
            column_A="class_name", column_B="class_id",
            value_pairs_set=[(n, vocab.object_id(n)) for n in OBJECT_NAMES],
            row_condition=known, description="class_id is the STTran id of class_name",
        ),
        *_box(gxe, "x1", "y1", "x2", "y2", what="object box"),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_attention", min_value=1, max_value=1,
            description="exactly one attention label per object",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_spatial", min_value=0, max_value=len(vocab.SPATIAL),
            description=f"at most {len(vocab.SPATIAL)} spatial labels per object",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_contacting", min_value=0, max_value=len(vocab.CONTACTING),
            description=f"at most {len(vocab.CONTACTING)} contacting labels per object",
        ),
    ]  # fmt: skip


def _relations(gxe: Any) -> list:
    from great_expectations.expectations.row_conditions import Column

    pairs = _pairs_expectation()
    predicate = Column("predicate").is_in(vocab.PREDICATES)
    pid = Column("predicate_id")
    with_id = predicate & (pid >= PREDICATE_IDS[0]) & (pid <= PREDICATE_IDS[1])
    return [
        *_not_null(gxe, "relations", ("frame_key", "kind", "predicate")),
        gxe.ExpectColumnValuesToBeInSet(
            column="kind", value_set=list(vocab.KINDS),
            description="kind is attention, spatial or contacting",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="predicate", value_set=list(vocab.PREDICATES),
            description="predicate is an Action Genome predicate",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="predicate_id", min_value=PREDICATE_IDS[0], max_value=PREDICATE_IDS[1],
            description="predicate_id indexes the 26 predicates",
        ),
        pairs(
            column_A="kind", column_B="predicate",
            value_pairs_set=[(k, p) for k, names in vocab.KINDS.items() for p in names],
            row_condition=Column("kind").is_in(vocab.KINDS) & predicate,
            description="predicate belongs to its kind",
        ),
        pairs(
            column_A="predicate", column_B="predicate_id",
            value_pairs_set=[(p, i) for i, p in enumerate(vocab.PREDICATES)],
            row_condition=with_id, description="predicate_id is the index of predicate",
        ),
        pairs(
            column_A="predicate", column_B="local_id",
            value_pairs_set=[(p, i) for names in vocab.KINDS.values() for i, p in enumerate(names)],
            row_condition=predicate, description="local_id is the index of predicate in its kind",
        ),
    ]  # fmt: skip


def build_suites() -> dict[str, ExpectationSuite]:
    """One ``ExpectationSuite`` named ``prepare.<table>`` per table, columns check first."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suites = {}
    for table, expectations in (
        ("frames", _frames(gxe)),
        ("objects", _objects(gxe)),
        ("relations", _relations(gxe)),
    ):
        columns = gxe.ExpectTableColumnsToMatchSet(
            column_set=COLUMNS[table], exact_match=False,
            description=f"{table} has every column the later stages read",
        )  # fmt: skip
        suite = gx.ExpectationSuite(name=f"prepare.{table}", expectations=[columns, *expectations])
        # ExpectationSuite logs and drops an invalid expectation; a guard must not shrink.
        if len(suite.expectations) != 1 + len(expectations):
            raise RuntimeError(f"GX dropped an expectation of the {table} suite")
        suites[table] = suite
    return suites
