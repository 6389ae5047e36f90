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

GX is imported inside :func:`validate_tables` (the import costs ~4.5 s), so importing this
module stays cheap.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scenellm.data.expectations import INDEX_COLUMNS, build_suites

if TYPE_CHECKING:
    import pandas as pd

DOCS_SITE = "scenellm_prepare"


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


def validate_tables(
    tables: dict[str, pd.DataFrame], report_dir: Path | None = None, examples: int = 5
) -> ValidationReport:
    """Validate the prepared tables against the ``prepare.<table>`` suites.

    Args:
        tables: ``{"frames": df, "objects": df, "relations": df}`` (extra keys are ignored).
        report_dir: where to write ``validation.json``, ``validation.txt`` and ``data_docs/``;
            ``None`` writes nothing.
        examples: offending rows kept per failed expectation.
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
        df = tables[table].reset_index(drop=True)  # GX reports row labels; make them positions
        on = [c for c in INDEX_COLUMNS[table] if c in df.columns]
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": examples}
        if on:
            result_format["unexpected_index_column_names"] = on
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=table, data=batch, suite=context.suites.add(suite))
        )
        result = definition.run(batch_parameters={"dataframe": df}, result_format=result_format)
        order = {e.id: i for i, e in enumerate(suite.expectations)}
        failed = sorted(
            (r for r in result.results if not r.success),
            key=lambda r: order.get(r.expectation_config.id, 0),
        )
        evaluated += len(result.results)
        failures += [_failure(table, df, r, on, examples) for r in failed]
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
