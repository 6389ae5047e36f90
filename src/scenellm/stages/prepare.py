"""``prepare``: AG layout → STTran-filtered, validated parquet tables + summary."""

from __future__ import annotations

import json
import shutil

from scenellm.data.ag import load_action_genome
from scenellm.data.tables import build_tables
from scenellm.errors import DataError
from scenellm.stages.base import StageContext, StageSpec, discard_partial

SPEC = StageSpec(
    name="prepare",
    sections=("prepare",),
    code=("data/ag.py", "data/unpickle.py", "data/tables.py", "data/vocab.py",
          "data/validation.py", "stages/prepare.py"),
)


class DataValidationError(DataError):
    """The prepared tables broke a Great Expectations rule; the report says which."""


def run(ctx: StageContext) -> dict:
    for child in ctx.workdir.iterdir():  # not resumable: start clean
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    dataset = load_action_genome(ctx.data_root, min_frames=ctx.params.prepare.min_frames)
    tables = build_tables(dataset)
    if ctx.params.prepare.validate_data:
        from scenellm.data.validation import validate_tables

        report = validate_tables(tables, report_dir=ctx.workdir / "validation")
        if not report.success:
            failed_dir = ctx.project.home / "reports" / f"validation-{ctx.fingerprint[:16]}"
            shutil.rmtree(failed_dir, ignore_errors=True)
            failed_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(ctx.workdir / "validation"), failed_dir)
            discard_partial(ctx)
            raise DataValidationError(
                f"{ctx.data_root}: {len(report.failures)} data expectation(s) failed; "
                f"report: {failed_dir / 'validation.txt'}\n{report.to_text()}")
    for name, table in tables.items():
        table.to_parquet(ctx.workdir / f"{name}.parquet", index=False)
    counts = dataset.counts()
    summary = {"data_root": str(ctx.data_root), "data_version": ctx.data_version,
               "splits": counts}
    (ctx.workdir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return {f"{split}_{key}": value for split, c in counts.items() for key, value in c.items()}
