"""An audit: TARGET → recorded lineage → link checks (→ reproduction) → verdict.

The verdict passes when no checkable link fails (``exit_code`` 0); links that cannot be
checked (no git repository, deleted outputs) are listed with their reason and do not fail
the audit. The HTML and JSON reports are logged to the audited run under
``audit/<UTC time>/`` and the run gets ``scenellm.audit.verdict`` / ``.time`` tags.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scenellm.audit.checks import FAIL, NOT_CHECKABLE, PASS, Check
from scenellm.audit.recorded import RecordedRun
from scenellm.audit.reproduce import MODES, Reproduction
from scenellm.audit.targets import Target
from scenellm.errors import UserError
from scenellm.project import Project


@dataclass
class AuditReport:
    target: Target
    recorded: RecordedRun
    project: Project
    checks: list[Check]
    reproduction: Reproduction | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    logged: str | None = None  # artifact folder on the audited run

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in (PASS, FAIL, NOT_CHECKABLE)}

    @property
    def verdict(self) -> str:
        return FAIL if self.counts[FAIL] else PASS

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == FAIL else 0

    @property
    def failed(self) -> list[str]:
        return [c.link for c in self.checks if c.status == FAIL]

    def node_status(self, node: str) -> str | None:
        """fail if any check of ``node`` fails, pass if all pass, ``partial`` for pass plus
        not checkable, None when the node has no checks."""
        states = {c.status for c in self.checks if c.node == node}
        if not states:
            return None
        if FAIL in states:
            return FAIL
        return states.pop() if len(states) == 1 else "partial"

    def to_dict(self) -> dict[str, Any]:
        from scenellm.audit.stage_checks import output_path

        rec = self.recorded
        lineage = {
            k: rec.lineage[k]
            for k in (
                "git_commit",
                "git_dirty",
                "data_md5",
                "prefect_flow_run_id",
                "study",
                "packages",
            )
        }
        return {
            "target": vars(self.target),
            "run": {
                "run_id": rec.run_id,
                "run_name": rec.run_name,
                "status": rec.status,
                "experiment_id": rec.experiment_id,
                "parent": rec.parent,
                "trial": rec.trial,
                **lineage,
                "inherited": rec.inherited,
                "params_source": rec.params_source,
                "dataset": rec.dataset,
                "models": rec.models,
            },
            "stages": {
                name: {
                    "fingerprint": s.fingerprint,
                    "output_hash": s.output_hash,
                    "reused": s.reused,
                    "child_run_id": s.child_run_id,
                    "output": str(output_path(self.project, name, s.fingerprint))
                    if s.fingerprint
                    else None,
                }
                for name, s in rec.stages.items()
            },
            "checks": [c.to_dict() for c in self.checks],
            "reproduction": self.reproduction.to_dict() if self.reproduction else None,
            "counts": self.counts,
            "failed": self.failed,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "created": self.created,
            "logged": self.logged,
        }


def resolve_params(rec: RecordedRun):
    """``(Params, None)`` from the recorded params, or ``(None, reason)``."""
    from scenellm.config.load import validate

    if rec.raw_params is None:
        return None, "the run recorded no params (no params.json, no run params)"
    try:
        return validate(rec.raw_params, source=f"run {rec.run_id} {rec.params_source}"), None
    except UserError as exc:
        return None, str(exc)


def run_checks(
    rec: RecordedRun, target: Target, project: Project, params, params_error: str | None
) -> list[Check]:
    from scenellm.audit import checks, data_checks
    from scenellm.audit.stage_checks import stage_checks

    out = [
        *checks.check_commit(rec, project),
        data_checks.check_data_now(rec, project, params),
        data_checks.check_dataset_input(rec),
        data_checks.check_data_at_commit(rec, project, params),
        checks.check_params(rec),
        *stage_checks(rec, project, params, params_error),
    ]
    if target.model is not None:
        out.append(checks.check_model(rec, target.model))
    return out


def log_report(client, report: AuditReport) -> str:
    """Log ``report.html`` and ``audit.json`` to the audited run; returns the folder."""
    from scenellm.audit.report_html import render_html

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    report.logged = f"audit/{stamp}"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "report.html").write_text(render_html(report))
        (Path(tmp) / "audit.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
        client.log_artifacts(report.recorded.run_id, tmp, artifact_path=report.logged)
    client.set_tag(report.recorded.run_id, "scenellm.audit.verdict", report.verdict)
    client.set_tag(report.recorded.run_id, "scenellm.audit.time", report.created)
    return report.logged


def audit(
    target: str,
    project: Project | None = None,
    reproduce: str | None = None,
    tolerance: float | None = None,
    log: bool = True,
) -> AuditReport:
    """Audit ``target`` (see :mod:`scenellm.audit.targets`) in ``project``'s MLflow store.

    ``reproduce``: None, ``"eval"`` or ``"full"`` (see :mod:`scenellm.audit.reproduce`);
    ``tolerance`` overrides its default (0 on CPU). ``log`` logs the reports to the run.
    """
    from mlflow import MlflowClient

    from scenellm.audit.recorded import load_recorded
    from scenellm.audit.reproduce import reproduce as rerun
    from scenellm.audit.targets import resolve_target

    if reproduce is not None and reproduce not in MODES:
        raise UserError(f"--reproduce {reproduce}: choose one of {', '.join(MODES)}.")
    project = project or Project.discover()
    client = MlflowClient(project.mlflow_tracking_uri)
    resolved = resolve_target(client, target)
    rec = load_recorded(client, resolved.run_id)
    params, error = resolve_params(rec)
    report = AuditReport(resolved, rec, project, run_checks(rec, resolved, project, params, error))
    if reproduce is not None:
        report.reproduction = rerun(client, rec, project, params, reproduce, tolerance)
        report.checks.append(report.reproduction.check())
    if log:
        log_report(client, report)
    return report
