"""The Great Expectations data guard: valid tables pass, each injected fault fails exactly
the expectation meant to catch it, and the report names the table, expectation and row.

A full validation costs ~1 s of GX overhead, so the row-level faults are injected together,
each into its own frame, and validated once; a failure is attributed to a fault by the
frame_key of its example rows. Faults that touch a whole table get their own validation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import pytest

from scenellm.data import vocab
from scenellm.data.tables import FRAME_COLUMNS, OBJECT_COLUMNS, RELATION_COLUMNS
from scenellm.data.validation import CHUNK_ROWS, ValidationReport, validate_tables, video_chunks

W, H = 640, 480
N_VIDEOS, FRAMES_PER_VIDEO, OBJECTS_PER_FRAME = 8, 4, 2  # videos 6 and 7 are the test split


@pytest.fixture(scope="module", autouse=True)
def _gx():
    """Import GX once for the module (~4.5 s), with analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    return great_expectations


def make_tables() -> dict[str, pd.DataFrame]:
    """A small valid set of tables: 32 frames in 8 videos, 2 objects per frame."""
    frames, objects, relations = [], [], []
    for v in range(N_VIDEOS):
        video, split = f"V{v:02d}.mp4", "test" if v >= 6 else "train"
        for f in range(FRAMES_PER_VIDEO):
            key = f"{video}/{f:06d}.png"
            frames.append((key, video, f"{f:06d}.png", split, f, W, H, 10.0, 20.0, 300.0, 470.0, 2))
            for o in range(1, OBJECTS_PER_FRAME + 1):
                name = vocab.OBJECT_CLASSES[1 + (3 * v + f + o) % 35]
                box = (50.0 * o, 40.0 * o, 50.0 * o + 120.0, 40.0 * o + 90.0)
                objects.append(
                    (key, video, split, o, vocab.object_id(name), name, *box, W, H, 1, 1, 1)
                )
                for kind, names in vocab.KINDS.items():
                    local = (v + f + o) % len(names)
                    predicate = names[local]
                    pid = vocab.PREDICATES.index(predicate)
                    relations.append((key, video, split, o, kind, predicate, pid, local))
    return {
        "frames": pd.DataFrame(frames, columns=FRAME_COLUMNS),
        "objects": pd.DataFrame(objects, columns=OBJECT_COLUMNS),
        "relations": pd.DataFrame(relations, columns=RELATION_COLUMNS),
    }


def frame_key(i: int) -> str:
    return f"V{i // FRAMES_PER_VIDEO:02d}.mp4/{i % FRAMES_PER_VIDEO:06d}.png"


def rows(tables, table: str, key: str, **match) -> pd.Series:
    df = tables[table]
    mask = df["frame_key"] == key
    for column, value in match.items():
        mask &= df[column] == value
    return mask


def set_value(table: str, column: str, value, **match) -> Callable:
    def apply(tables, key):
        tables[table].loc[rows(tables, table, key, **match), column] = value

    return apply


def set_person_box_missing(tables, key):
    box = ["person_x1", "person_y1", "person_x2", "person_y2"]
    tables["frames"].loc[rows(tables, "frames", key), box] = float("nan")


def add_second_person_box(tables, key):
    second = tables["frames"][rows(tables, "frames", key)].assign(person_x1=400.0, person_x2=600.0)
    tables["frames"] = pd.concat([tables["frames"], second], ignore_index=True)


def duplicate_object(tables, key):
    """A second row for object 1 of the frame, under a new object_idx."""
    copy = tables["objects"][rows(tables, "objects", key, object_idx=1)].assign(object_idx=3)
    tables["objects"] = pd.concat([tables["objects"], copy], ignore_index=True)


def wrong_kind(tables, key):
    """An attention row holding a contacting predicate, its ids consistent with the name."""
    mask = rows(tables, "relations", key, object_idx=1, kind="attention")
    tables["relations"].loc[mask, ["predicate", "predicate_id", "local_id"]] = ["holding", 14, 5]


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable  # (tables, frame_key) -> None; touches rows of that frame only
    expected: frozenset  # {(table, expectation_type, columns)} that must fail, and no other


def fails(*items) -> frozenset:
    return frozenset((t, e, tuple(c)) for t, e, c in items)


A_GT_B = "expect_column_pair_values_a_to_be_greater_than_b"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
IN_PAIRS = "expect_column_pair_values_to_be_in_pairs"
NOT_NULL = "expect_column_values_to_not_be_null"
OBJ1 = {"object_idx": 1}

FAULTS = [
    Fault("box outside the frame", set_value("objects", "x2", W + 1.0, **OBJ1),
          fails(("objects", A_GT_B, ["width", "x2"]))),
    Fault("zero-width box", set_value("objects", "x2", 50.0, **OBJ1),
          fails(("objects", A_GT_B, ["x2", "x1"]))),
    Fault("negative coordinate", set_value("objects", "y1", -3.0, **OBJ1),
          fails(("objects", BETWEEN, ["y1"]))),
    Fault("unknown class name", set_value("objects", "class_name", "unicorn", **OBJ1),
          fails(("objects", IN_SET, ["class_name"]))),
    Fault("class_id out of range", set_value("objects", "class_id", 37, **OBJ1),
          fails(("objects", BETWEEN, ["class_id"]))),
    Fault("class_id of another class", set_value("objects", "class_id", 2, **OBJ1),
          fails(("objects", IN_PAIRS, ["class_name", "class_id"]))),
    Fault("missing class name", set_value("objects", "class_name", None, **OBJ1),
          fails(("objects", NOT_NULL, ["class_name"]))),
    Fault("unknown predicate", set_value("relations", "predicate", "flying", kind="spatial"),
          fails(("relations", IN_SET, ["predicate"]))),
    Fault("unknown kind", set_value("relations", "kind", "gaze", kind="attention"),
          fails(("relations", IN_SET, ["kind"]))),
    Fault("predicate_id out of range", set_value("relations", "predicate_id", 26, **OBJ1),
          fails(("relations", BETWEEN, ["predicate_id"]))),
    Fault("predicate of another kind", wrong_kind,
          fails(("relations", IN_PAIRS, ["kind", "predicate"]))),
    Fault("predicate_id of another predicate",
          set_value("relations", "predicate_id", 0, kind="contacting", **OBJ1),
          fails(("relations", IN_PAIRS, ["predicate", "predicate_id"]))),
    Fault("local_id of another predicate",
          set_value("relations", "local_id", 16, kind="contacting", **OBJ1),
          fails(("relations", IN_PAIRS, ["predicate", "local_id"]))),
    Fault("duplicate (frame_key, object_idx)", set_value("objects", "object_idx", 1),
          fails(("objects", "expect_compound_columns_to_be_unique", ["frame_key", "object_idx"]))),
    Fault("two person boxes for one frame", add_second_person_box,
          fails(("frames", "expect_column_values_to_be_unique", ["frame_key"]))),
    Fault("missing person box", set_person_box_missing,
          fails(*[("frames", NOT_NULL, [c]) for c in ("person_x1", "person_y1", "person_x2", "person_y2")])),
    Fault("n_attention = 0", set_value("objects", "n_attention", 0, **OBJ1),
          fails(("objects", BETWEEN, ["n_attention"]))),
    Fault("n_attention = 2", set_value("objects", "n_attention", 2, **OBJ1),
          fails(("objects", BETWEEN, ["n_attention"]))),
    Fault("more spatial labels than predicates", set_value("objects", "n_spatial", 7, **OBJ1),
          fails(("objects", BETWEEN, ["n_spatial"]))),
    Fault("person box outside the frame", set_value("frames", "person_y2", H + 5.0),
          fails(("frames", A_GT_B, ["height", "person_y2"]))),
    Fault("person box of zero height", set_value("frames", "person_y2", 20.0),
          fails(("frames", A_GT_B, ["person_y2", "person_y1"]))),
    Fault("frame without objects", set_value("frames", "num_objects", 0),
          fails(("frames", BETWEEN, ["num_objects"]))),
    Fault("video id with a space", set_value("frames", "video_id", "V 00.mp4"),
          fails(("frames", "expect_column_values_to_match_regex", ["video_id"]))),
    Fault("frame wider than any video", set_value("frames", "width", 10**6),
          fails(("frames", BETWEEN, ["width"]))),
    Fault("same object twice in a frame", duplicate_object,
          fails(("objects", "expect_compound_columns_to_be_unique",
                 ["frame_key", "class_name", "x1", "y1", "x2", "y2"]))),
]  # fmt: skip
FAULT_FRAMES = {fault.name: frame_key(i) for i, fault in enumerate(FAULTS)}
assert len(FAULTS) <= N_VIDEOS * FRAMES_PER_VIDEO


def signature(failure) -> tuple:
    return failure.table, failure.expectation_type, tuple(failure.columns)


def example_frames(failure) -> set[str]:
    return {row["frame_key"] for row in failure.examples}


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> tuple[ValidationReport, object]:
    out = tmp_path_factory.mktemp("valid")
    cwd = out / "cwd"
    cwd.mkdir()
    before = os.getcwd()
    os.chdir(cwd)  # GX must not create gx/ or anything else in the working directory
    try:
        report = validate_tables(make_tables(), report_dir=out / "report")
    finally:
        os.chdir(before)
    return report, out


@pytest.fixture(scope="module", params=[CHUNK_ROWS, 6], ids=["whole", "chunked"])
def faulty(tmp_path_factory, request) -> tuple[ValidationReport, object]:
    """Every fault at once; ``chunked`` validates 1-2 videos at a time, where the appended
    second person box and duplicate object sit in their video's chunk, far from its rows."""
    tables = make_tables()
    for fault in FAULTS:
        fault.apply(tables, FAULT_FRAMES[fault.name])
    out = tmp_path_factory.mktemp("faulty")
    return validate_tables(tables, report_dir=out, examples=5, chunk_rows=request.param), out


def test_valid_tables_pass_and_build_data_docs(valid):
    report, out = valid
    assert report.success and report.failures == [], report.to_text()
    assert report.evaluated == 53
    assert report.data_docs == (out / "report" / "data_docs" / "index.html").resolve()
    assert report.data_docs.is_file()
    site = out / "report" / "data_docs" / "validations"
    suites = {p.relative_to(site).parts[:-3] for p in site.rglob("*.html")}  # less run/page
    assert suites == {("prepare", "frames"), ("prepare", "frames", "distinct"),
                      ("prepare", "objects"), ("prepare", "relations")}
    assert (
        json.loads((out / "report" / "validation.json").read_text(encoding="utf-8"))["success"]
        is True
    )
    assert (
        (out / "report" / "validation.txt")
        .read_text(encoding="utf-8")
        .startswith("data validation passed")
    )
    assert list((out / "cwd").iterdir()) == []


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_fails_exactly_its_expectation(faulty, fault):
    report, out = faulty
    key = FAULT_FRAMES[fault.name]
    caught = [f for f in report.failures if key in example_frames(f)]
    assert {signature(f) for f in caught} == fault.expected, report.to_text()
    text = (out / "validation.txt").read_text(encoding="utf-8")
    for failure in caught:
        line = failure.to_text()
        assert line.startswith(f"[{failure.table}] {failure.expectation_type}(")
        assert failure.description and failure.description in line
        assert key in line and line in text  # the written report shows the offending row
        assert failure.unexpected_count == len(failure.examples)


def test_every_failure_is_explained_by_a_fault(faulty):
    report, out = faulty
    assert not report.success
    expected = set().union(*(fault.expected for fault in FAULTS))
    assert {signature(f) for f in report.failures} == expected
    for failure in report.failures:
        assert example_frames(failure) <= set(FAULT_FRAMES.values()), failure.to_text()
    assert json.loads((out / "validation.json").read_text(encoding="utf-8")) == json.loads(
        json.dumps(report.to_dict())
    )


def test_example_rows_are_the_offending_rows(faulty):
    report, _ = faulty
    key = FAULT_FRAMES["two person boxes for one frame"]
    (dup,) = [f for f in report.failures if key in example_frames(f)]
    assert sorted(row["person_x1"] for row in dup.examples) == [10.0, 400.0]
    key = FAULT_FRAMES["n_attention = 2"]
    (att,) = [f for f in report.failures if f.columns == ["n_attention"]]
    (row,) = [r for r in att.examples if r["frame_key"] == key]
    assert (row["object_idx"], row["n_attention"]) == (1, 2)


def test_missing_split_fails_the_split_expectation():
    tables = {name: df[df["split"] == "train"] for name, df in make_tables().items()}
    report = validate_tables(tables)
    (failure,) = report.failures
    assert signature(failure) == (
        "frames",
        "expect_column_distinct_values_to_contain_set",
        ("split",),
    )
    assert failure.observed == {"partial_missing_list": ["test"]}
    assert "every split is non-empty" in report.to_text() and '["test"]' in report.to_text()
    assert report.data_docs is None


@pytest.mark.parametrize("chunk_rows", [CHUNK_ROWS, 4])
def test_every_split_non_empty_is_judged_on_the_whole_table(chunk_rows):
    """With one video a chunk, no chunk holds both splits; the table does."""
    assert validate_tables(make_tables(), chunk_rows=chunk_rows).success
    tables = {name: df[df["split"] == "train"] for name, df in make_tables().items()}
    (failure,) = validate_tables(tables, chunk_rows=chunk_rows).failures
    assert failure.observed == {"partial_missing_list": ["test"]}


def test_parquet_tables_are_validated_like_dataframes(tmp_path):
    """prepare validates the written files, chunk by chunk, with strings read dictionary-
    encoded: every fault gives the report the DataFrames give."""
    tables = make_tables()
    for fault in FAULTS:
        fault.apply(tables, FAULT_FRAMES[fault.name])
    paths = {}
    for name, df in tables.items():
        paths[name] = tmp_path / f"{name}.parquet"
        df.to_parquet(paths[name], index=False)
    from_frames = validate_tables(tables)
    from_files = validate_tables(paths, chunk_rows=6)
    assert len(from_files.failures) == len(set().union(*(f.expected for f in FAULTS)))
    assert from_files.to_dict() == from_frames.to_dict()
    (dup,) = [f for f in from_files.failures if f.columns == ["frame_key"]
              and f.expectation_type == "expect_column_values_to_be_unique"]
    assert dup.unexpected_count == 2  # the appended box meets its frame's row in one chunk


@pytest.mark.parametrize("rows", [1, 5, 9, 10**6])
def test_video_chunks_hold_whole_videos_in_table_order(tmp_path, rows):
    import numpy as np
    import pyarrow as pa

    df = make_tables()["objects"]
    df = df.iloc[np.random.default_rng(0).permutation(len(df))].reset_index(drop=True)
    df.loc[3, "frame_key"] = None  # a missing key is a video of its own ("")
    df["row"] = np.arange(len(df))
    chunks = list(video_chunks(df, rows))
    from_arrow = list(video_chunks(pa.Table.from_pandas(df, preserve_index=False), rows))
    assert len(chunks) == len(from_arrow)
    for a, b in zip(chunks, from_arrow, strict=True):
        pd.testing.assert_frame_equal(a, b)
    def video(keys: pd.Series) -> pd.Series:
        return keys.map(lambda k: k.split("/")[0] if isinstance(k, str) else "")

    video_of = video(df["frame_key"])
    videos = [set(video(c["frame_key"])) for c in chunks]
    assert sum(map(len, videos)) == len(set(video_of))  # every video in exactly one chunk
    assert sorted(pd.concat(chunks)["row"]) == list(range(len(df)))
    size = video_of.value_counts()
    for chunk, held in zip(chunks, videos, strict=True):
        assert chunk["row"].is_monotonic_increasing
        assert chunk.index.equals(pd.RangeIndex(len(chunk)))
        assert len(chunk) < rows + size[list(held)].max()  # only its last video spills over
    if rows == 1:
        assert len(chunks) == len(size)
    if rows >= len(df):
        assert len(chunks) == 1


def test_missing_column_is_reported_not_raised():
    tables = make_tables()
    tables["relations"] = tables["relations"].drop(columns="predicate_id")
    report = validate_tables(tables)
    by_type = {f.expectation_type: f for f in report.failures}
    columns = by_type["expect_table_columns_to_match_set"]
    assert columns.observed["details"] == {"mismatched": {"missing": ["predicate_id"]}}
    assert {f.table for f in report.failures} == {"relations"}
    errored = [f for f in report.failures if f.exception]
    assert errored and all("predicate_id" in f.exception for f in errored)


@pytest.mark.parametrize("key", ["V00.mp4/./000000.png", "../V00.mp4/000000.png",
                                 "/V00.mp4/000000.png", "V00.mp4/000000.txt"])
def test_frame_key_not_in_normal_form_fails_the_key_expectation(key):
    tables = make_tables()
    tables["frames"].loc[0, "frame_key"] = key
    (failure,) = validate_tables(tables).failures
    assert signature(failure) == (
        "frames", "expect_column_values_to_match_regex", ("frame_key",)
    )
    assert failure.examples[0]["frame_key"] == key


def test_missing_table_is_an_error():
    tables = make_tables()
    del tables["relations"]
    with pytest.raises(ValueError, match="relations"):
        validate_tables(tables)


def test_pair_metric_agrees_with_gx_builtin():
    """The vectorized pair check flags the same rows as GX's iterrows implementation."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from scenellm.data.expectations import _pairs_expectation

    df = pd.DataFrame(
        {
            "a": ["x", "x", "y", "z", None, "y", None],
            "b": [1, 2, 2, 1, 1, None, None],
        }
    ).astype({"b": "Int64"})
    pairs = [("x", 1), ("y", 2)]
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("t")
    suite = context.suites.add(
        gx.ExpectationSuite(
            name="pairs",
            expectations=[
                gxe.ExpectColumnPairValuesToBeInSet(
                    column_A="a", column_B="b", value_pairs_set=pairs, ignore_row_if="neither"
                ),
                _pairs_expectation()(
                    column_A="a", column_B="b", value_pairs_set=pairs, ignore_row_if="neither"
                ),
            ],
        )
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name="pairs", data=batch.add_batch_definition_whole_dataframe("t"), suite=suite
        )
    )
    result = definition.run(batch_parameters={"dataframe": df}, result_format="COMPLETE")
    builtin, ours = (r.result for r in result.results)
    assert builtin["unexpected_index_list"] == ours["unexpected_index_list"] == [1, 3, 4, 5, 6]
    assert builtin["unexpected_count"] == ours["unexpected_count"] == 5


def test_import_does_not_load_great_expectations():
    code = "import sys, scenellm.data.validation; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
