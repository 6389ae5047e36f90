"""The ``audit`` flow: verify a run's recorded lineage (and optionally reproduce its
metrics) on a schedule, e.g. every Monday on the champion::

    python flows/audit.py     # serves the weekly champion audit (cron "0 6 * * 1")

The HTML report goes to the audited MLflow run and a summary to a Prefect artifact; a
failed audit fails the flow run, so Prefect's notifications fire.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from scenellm.audit.report import audit as run_audit
from scenellm.project import Project


def summary_markdown(report) -> str:
    rows = "\n".join(
        f"| {c.status} | `{c.link}` | {c.detail} |" for c in report.checks if c.status != "pass"
    )
    counts = report.counts
    return (
        f"# audit of `{report.target.text}`: **{report.verdict}**\n\nrun "
        f"`{report.recorded.run_id}`; {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['not checkable']} not checkable; HTML report on the run under "
        f"`{report.logged}`\n\n| state | link | detail |\n|---|---|---|\n{rows}\n"
    )


@flow(name="audit", log_prints=True)
def audit(target: str = "scenellm@champion", reproduce: str | None = None) -> dict:
    report = run_audit(target, Project.discover(), reproduce=reproduce)
    create_markdown_artifact(
        summary_markdown(report), key="audit-report", description=f"Lineage audit of {target}"
    )
    print(f"audit {target}: {report.verdict} ({report.counts})")
    if report.exit_code:
        raise RuntimeError(f"audit of {target} failed: broken links {', '.join(report.failed)}")
    return report.to_dict()


if __name__ == "__main__":
    audit.serve(
        name="weekly-champion-audit", cron="0 6 * * 1", parameters={"target": "scenellm@champion"}
    )
