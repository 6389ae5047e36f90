"""``prepare``: AG layout → STTran-filtered, validated parquet tables + summary.

The output is a pure function of the data and params: the tables, ``summary.json`` and
``validation.json`` (the expectations' outcome, without paths or timestamps). The Great
Expectations report with its Data Docs site (timestamped HTML) goes beside the stage
store, to ``<home>/reports/validation-<fingerprint>/``, and is never part of the output's
hash.
"""

from __future__ import annotations

import json
import shutil

from scenellm.data.ag import load_action_genome
from scenellm.data.tables import build_tables
from scenellm.errors import DataError
from scenellm.io import staged_dir
from scenellm.memory import release_free_memory
from scenellm.stages.base import StageContext, StageSpec

SPEC = StageSpec(
    name="prepare",
    sections=("prepare",),
)


class DataValidationError(DataError):
    """The prepared tables broke a Great Expectations rule; the report says which."""


def validate(ctx: StageContext, tables: dict) -> dict:
    """Run the GX suite on the written tables (chunks of whole videos); the full report lands under ``<home>/reports/``, the outcome is
    returned for ``validation.json``; a failure raises with one line."""
    from scenellm.data.validation import validate_tables

    reports = ctx.project.home / "reports" / f"validation-{ctx.fingerprint[:16]}"
    with staged_dir(reports) as tmp:
        report = validate_tables(tables, report_dir=tmp)
    if not report.success:
        raise DataValidationError(f"{ctx.data_root}: {report.headline()}; report: "
                                  f"{reports / 'validation.txt'}")
    outcome = report.to_dict()
    outcome.pop("data_docs")
    return outcome


def import_ahead() -> None:
    """Do now the imports the load, table build and parquet write would do midway, where
    their module objects, which live on, would pin the memory freed around them (see
    :mod:`scenellm.memory`)."""
    import io

    import pandas as pd
    from PIL import Image

    Image.init()  # every format plugin (Image.open imports them at the first frame)
    pd.DataFrame({"s": ["a"], "i": [1]}).to_parquet(io.BytesIO())  # pandas' Arrow types
    release_free_memory()  # and the libc binding it loads


def run(ctx: StageContext) -> dict:
    for child in ctx.workdir.iterdir():  # not resumable: start clean
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    import_ahead()
    dataset = load_action_genome(ctx.data_root, min_frames=ctx.params.prepare.min_frames)
    counts = dataset.counts()
    tables = build_tables(dataset, release=True)  # the tables hold it all; the dataset is
    del dataset  # emptied as they are made
    paths = {}
    for name in list(tables):  # written first: validation reads them back chunk by chunk
        paths[name] = ctx.workdir / f"{name}.parquet"
        tables.pop(name).to_parquet(paths[name], index=False)
    release_free_memory()  # the rows' Python objects, before GX's import takes their place
    if ctx.params.prepare.validate_data:
        outcome = validate(ctx, paths)
        (ctx.workdir / "validation.json").write_text(json.dumps(outcome, indent=2,
                                                                sort_keys=True))
    summary = {"data_version": ctx.data_version, "splits": counts}
    (ctx.workdir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return {f"{split}_{key}": value for split, c in counts.items() for key, value in c.items()}
