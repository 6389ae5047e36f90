"""Great Expectations data guard over the ``frames``, ``objects`` and ``relations`` tables.

:func:`validate_tables` runs the suites of :mod:`scenellm.data.expectations` in an ephemeral
GX context: a pandas data source with one dataframe asset, whole-dataframe batch definition
and ``ValidationDefinition`` per table, each run on its own DataFrame. (A ``Checkpoint``
passes one set of batch parameters, i.e. one DataFrame, to all its validations, so it would
take three checkpoints whose ``UpdateDataDocsAction`` each rebuild the site; one
``build_data_docs`` after the three runs renders the same pages once.) With ``report_dir``
the filesystem Data Docs site is ``report_dir/data_docs`` and the report is written as
``validation.json`` and ``validation.txt`` beside it; without it nothing is written.

Failures come back with a few offending rows: GX names them by their key columns
(``unexpected_index_column_names`` = ``expectations.INDEX_COLUMNS``), and the full rows are
looked up in the DataFrame.

Tables are validated in chunks of whole videos (about ``chunk_rows`` rows each), so the
memory validation takes is that of a chunk, not of the table: a table given as a parquet
path is held as Arrow columns and each chunk alone becomes a DataFrame. A row-wise rule
holds for the table when it holds for every chunk; a uniqueness rule too, because every key
a suite requires unique contains ``frame_key`` and a chunk holds every row of the videos
its keys name (the part before ``/``). Rules on a column's distinct values (every split
non-empty) are table-wide: they run once, after the chunks, on the distinct values the
chunks collected. A failure's unexpected count is summed over the chunks, its examples
are the first ``examples`` found. Each chunk's run is its own validation result in the Data
Docs.

GX is imported inside :func:`validate_tables` (the import costs ~4.5 s), so importing this
module stays cheap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scenellm.data.expectations import INDEX_COLUMNS, build_suites

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    Table = pd.DataFrame | pa.Table | Path | str

DOCS_SITE = "scenellm_prepare"
CHUNK_ROWS = 10_000  # rows per validated chunk (more where one video has more)
# Rules on a column's distinct values: they judge the whole table, not a chunk of it.
TABLE_WIDE = ("ExpectColumnDistinctValuesToContainSet", "ExpectColumnDistinctValuesToBeInSet",
              "ExpectColumnDistinctValuesToEqualSet")


@dataclass
class FailedExpectation:
    """One failed expectation: where, what, how often, and a few offending rows."""

    table: str
    expectation_type: str
    columns: list[str]
    description: str
    unexpected_count: int | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    observed: Any = None
    exception: str | None = None

    def to_text(self) -> str:
        head = (
            f"[{self.table}] {self.expectation_type}({', '.join(self.columns)}): {self.description}"
        )
        lines = [head]
        if self.unexpected_count is not None:
            lines.append(f"  unexpected rows: {self.unexpected_count}")
        if self.observed is not None:
            lines.append(f"  observed: {json.dumps(self.observed, default=str)}")
        if self.exception:
            lines.append(f"  error: {self.exception}")
        lines += [f"  e.g. {json.dumps(row, default=str)}" for row in self.examples]
        return "\n".join(lines)


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_tables`; ``data_docs`` is the site's ``index.html``."""

    success: bool
    failures: list[FailedExpectation] = field(default_factory=list)
    data_docs: Path | None = None
    evaluated: int = 0

    def to_text(self) -> str:
        verdict = "passed" if self.success else f"FAILED {len(self.failures)} of"
        lines = [f"data validation {verdict} {self.evaluated} expectations"]
        lines += [f.to_text() for f in self.failures]
        if self.data_docs is not None:
            lines.append(f"Data Docs: {self.data_docs}")
        return "\n".join(lines)

    def headline(self) -> str:
        """One line for an error message: how many rules failed, the first rule and row."""
        if self.success:
            return f"all {self.evaluated} data expectations passed"
        first = self.failures[0]
        where = ""
        if first.examples and "frame_key" in first.examples[0]:
            where = f" (frame {first.examples[0]['frame_key']!r})"
        return (f"{len(self.failures)} of {self.evaluated} data expectations failed, first "
                f"[{first.table}] {first.description}{where}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_docs"] = None if self.data_docs is None else str(self.data_docs)
        return out


def _rows(df: pd.DataFrame, keys: list, on: list[str], n: int) -> list[dict[str, Any]]:
    """The rows of ``df`` behind GX's unexpected index list, as JSON-ready dicts.

    GX gives the ``on`` key columns of each offending row (``unexpected_index_column_names``),
    or bare row positions when the table lacks those columns.
    """
    import pandas as pd

    if not keys:
        return []
    if isinstance(keys[0], dict):
        wanted = pd.DataFrame(keys)[on].drop_duplicates()
        rows = df.merge(wanted, on=on, how="inner").head(n)  # duplicates: every row of the key
    else:
        rows = df.iloc[keys[:n]]
    return json.loads(rows.to_json(orient="records"))  # NaN → null, numpy → Python


# Result fields that explain a failed table- or column-level expectation (no offending rows).
_OBSERVED_KEYS = ("observed_value", "details", "partial_missing_list")


def _errors(info: dict) -> str | None:
    """GX 1.x keys ``exception_info`` by metric when a metric raised; join their messages."""
    infos = [info] if "raised_exception" in info else list(info.values())
    messages = {i["exception_message"] for i in infos if i.get("raised_exception")}
    return "; ".join(sorted(messages)) or None


def _failure(table: str, df: pd.DataFrame, result: Any, on: list[str], n: int) -> FailedExpectation:
    config = result.expectation_config
    kwargs = config.kwargs
    columns = kwargs.get("column_list") or [
        kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs
    ]
    res = result.result or {}
    keys = res.get("partial_unexpected_index_list") or []
    observed = {k: res[k] for k in _OBSERVED_KEYS if res.get(k) is not None}
    return FailedExpectation(
        table=table,
        expectation_type=config.type,
        columns=list(columns),
        description=config.description or "",
        unexpected_count=res.get("unexpected_count"),
        examples=_rows(df, keys, on, n),
        observed=observed or None,
        exception=_errors(result.exception_info or {}),
    )


def _context(docs_dir: Path | None) -> Any:
    """An ephemeral GX context whose only Data Docs site (if any) is ``docs_dir``."""
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX announces its ephemeral docs folder at INFO on every context; not the user's news
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # The ephemeral context comes with a site in a temp dir: nothing may land outside report_dir.
    for site in list(context.list_data_docs_sites()):
        context.delete_data_docs_site(site)
    if docs_dir is not None:
        backend = {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}
        context.add_data_docs_site(
            DOCS_SITE,
            {
                "class_name": "SiteBuilder",
                "store_backend": backend,
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _video_codes(source: pd.DataFrame | pa.Table) -> np.ndarray | None:
    """Each row's video (the part of ``frame_key`` before ``/``) as a code numbered in order
    of first appearance; ``None`` without a ``frame_key`` column."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        if "frame_key" not in source.columns:
            return None
        video = source["frame_key"].map(lambda k: k.split("/", 1)[0] if isinstance(k, str)
                                        else "")
        return pd.factorize(video)[0]
    import pyarrow.compute as pc

    if "frame_key" not in source.column_names:
        return None
    keys = pc.cast(source.column("frame_key"), "string")
    video = pc.list_element(pc.split_pattern(keys, "/", max_splits=1), 0)
    encoded = pc.dictionary_encode(pc.fill_null(video, "")).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False)


def video_chunks(source: Table, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The table as DataFrames of whole videos, about ``rows`` rows each (at least one
    chunk, empty for an empty table), rows in table order within a chunk, index reset.

    A parquet path is read as Arrow columns (a few bytes a string, not a Python object) and
    only the chunk at hand is converted to pandas.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = None
    if isinstance(source, (str, Path)):  # strings held dictionary-encoded until their chunk
        schema = pq.read_schema(source)
        text = [f.name for f in schema if f.type in (pa.string(), pa.large_string())]
        source = pq.read_table(source, read_dictionary=text)
    codes = _video_codes(source)
    n = len(source)
    if codes is None or n <= rows:
        yield (source.reset_index(drop=True) if isinstance(source, pd.DataFrame)
               else _to_pandas(source, schema))
        return
    sizes = np.bincount(codes)
    chunk_of_video = (np.cumsum(sizes) - sizes) // rows  # a video's chunk: rows before it
    chunk = chunk_of_video[codes]
    order = np.argsort(chunk, kind="stable")
    for part in np.split(order, np.cumsum(np.bincount(chunk))[:-1]):
        if not len(part):
            continue
        if isinstance(source, pd.DataFrame):
            yield source.iloc[part].reset_index(drop=True)
        else:
            yield _to_pandas(source.take(part), schema)


def _to_pandas(table: pa.Table, schema: pa.Schema | None) -> pd.DataFrame:
    """A chunk as the DataFrame its file would read as (strings decoded, not categorical)."""
    return (table if schema is None else table.cast(schema)).to_pandas()


@dataclass
class _Run:
    """The validation of one table, chunk by chunk: GX objects and the merged failures."""

    table: str
    chunkwise: Any  # ValidationDefinition of the row-wise and uniqueness rules
    tablewide: Any  # ValidationDefinition of the distinct-value rules, or None
    examples: int
    failures: dict[str, FailedExpectation] = field(default_factory=dict)
    distinct: dict[str, dict] = field(default_factory=dict)  # column -> its distinct values

    def check(self, definition: Any, df: pd.DataFrame) -> None:
        on = [c for c in INDEX_COLUMNS[self.table] if c in df.columns]  # GX names rows by them
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": self.examples}
        if on:
            result_format["unexpected_index_column_names"] = on
        result = definition.run(batch_parameters={"dataframe": df}, result_format=result_format)
        for r in result.results:
            if r.success:
                continue
            new = _failure(self.table, df, r, on, self.examples)
            old = self.failures.setdefault(r.expectation_config.id, new)
            if old is not new:  # failed in an earlier chunk too: add up
                if new.unexpected_count is not None:
                    old.unexpected_count = (old.unexpected_count or 0) + new.unexpected_count
                old.examples = (old.examples + new.examples)[: self.examples]
                old.exception = old.exception or new.exception

    def collect(self, df: pd.DataFrame) -> None:
        for column, seen in self.distinct.items():
            if column in df.columns:
                seen.update(dict.fromkeys(df[column].dropna().unique().tolist()))

    def finish(self) -> None:
        import pandas as pd

        if self.tablewide is None:
            return
        values = [list(v) for v in self.distinct.values()]
        longest = max(map(len, values), default=0)
        df = pd.DataFrame({c: pd.Series(v + [None] * (longest - len(v)), dtype=object)
                           for c, v in zip(self.distinct, values, strict=True)})
        self.check(self.tablewide, df)


def _split_suite(gx: Any, suite: Any) -> tuple[Any, Any]:
    """The suite's row-wise and uniqueness rules, and its distinct-value rules (or None)."""
    wide = [e for e in suite.expectations if type(e).__name__ in TABLE_WIDE]
    rest = [e for e in suite.expectations if type(e).__name__ not in TABLE_WIDE]
    for e in rest:  # chunk-local uniqueness is table-wide only on keys holding frame_key
        if "Unique" in type(e).__name__:
            columns = getattr(e, "column_list", None) or [getattr(e, "column", None)]
            if "frame_key" not in columns:
                raise RuntimeError(f"{suite.name}: {type(e).__name__}({columns}) cannot be "
                                   "checked chunk by chunk: its key lacks frame_key")
    rows = gx.ExpectationSuite(name=suite.name, expectations=rest)
    return rows, (gx.ExpectationSuite(name=f"{suite.name}.distinct", expectations=wide)
                  if wide else None)


def validate_tables(
    tables: Mapping[str, Table],
    report_dir: Path | None = None,
    examples: int = 5,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationReport:
    """Validate the prepared tables against the ``prepare.<table>`` suites.

    Args:
        tables: ``{"frames": ..., "objects": ..., "relations": ...}``, each a DataFrame, an
            Arrow table or the path of its parquet file (extra keys are ignored).
        report_dir: where to write ``validation.json``, ``validation.txt`` and ``data_docs/``;
            ``None`` writes nothing.
        examples: offending rows kept per failed expectation.
        chunk_rows: rows per validated chunk of whole videos.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    suites = build_suites()
    missing = sorted(set(suites) - set(tables))
    if missing:
        raise ValueError(f"validate_tables needs the tables {missing}; got {sorted(tables)}")
    report_dir = None if report_dir is None else Path(report_dir).resolve()
    docs_dir = None if report_dir is None else report_dir / "data_docs"
    context = _context(docs_dir)
    source = context.data_sources.add_pandas("prepare")
    failures, evaluated = [], 0
    for table, suite in suites.items():
        rows, wide = _split_suite(gx, suite)
        asset = source.add_dataframe_asset(table)
        definitions = [
            context.validation_definitions.add(gx.ValidationDefinition(
                name=s.name, data=asset.add_batch_definition_whole_dataframe(s.name),
                suite=context.suites.add(s)))
            if s is not None else None
            for s in (rows, wide)
        ]
        run = _Run(table, *definitions, examples=examples,
                   distinct={e.column: {} for e in (wide.expectations if wide else [])})
        for df in video_chunks(tables[table], chunk_rows):  # GX reports positions in df
            run.check(run.chunkwise, df)
            run.collect(df)
            del df
        run.finish()
        order = {e.id: i for i, e in enumerate(suite.expectations)}
        evaluated += len(suite.expectations)
        failures += [run.failures[i] for i in sorted(run.failures, key=lambda i: order[i])]
    if docs_dir is not None:
        context.build_data_docs(site_names=[DOCS_SITE])
    report = ValidationReport(
        success=not failures,
        failures=failures,
        data_docs=None if docs_dir is None else docs_dir / "index.html",
        evaluated=evaluated,
    )
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report.to_dict(), indent=2, default=str, ensure_ascii=False)
        (report_dir / "validation.json").write_text(text + "\n", encoding="utf-8")
        (report_dir / "validation.txt").write_text(report.to_text() + "\n", encoding="utf-8")
    return report
