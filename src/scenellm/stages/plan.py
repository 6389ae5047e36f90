"""What a run would do, without doing it (``--dry-run``): per stage, reuse / compute /
resume / recompute, and why — which input differs from the stage's latest output. With
``remote`` (the dry runs), a stage that would be computed here but whose output the shared
DVC remote holds (:mod:`scenellm.stages.shared_outputs`) is planned as "fetch"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenellm.config.load import params_hash
from scenellm.config.schema import Params
from scenellm.project import Project
from scenellm.stages.base import SUCCESS, fingerprint_inputs, intact, read_record
from scenellm.stages.registry import stage_module, upstream_closure


@dataclass
class PlannedStage:
    name: str
    fingerprint: str
    action: str  # reuse | compute | resume | recompute | fetch
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.name, "fingerprint": self.fingerprint[:16],
                "action": self.action, "reason": self.reason}


def _flat(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, values in sections.items() for k, v in values.items()}


def latest_record(stage_dir: Path) -> dict[str, Any] | None:
    """The success record of the stage's most recently completed output."""
    records = sorted(stage_dir.glob(f"*/{SUCCESS}"), key=lambda p: p.stat().st_mtime_ns)
    return read_record(records[-1].parent) if records else None


def what_changed(inputs: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """The inputs that differ from ``previous`` (a success record), in words."""
    if previous is None:
        return "never computed"
    reasons = []
    if inputs["data_version"] is not None and inputs["data_version"] != previous.get(
            "data_version"):
        reasons.append(f"data version {previous.get('data_version')} → "
                       f"{inputs['data_version']}")
    old, new = _flat(previous.get("params", {})), _flat(inputs["params"])
    reasons += [f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)]
    changed_up = [u for u, fp in inputs["upstream"].items()
                  if previous.get("upstream", {}).get(u) != fp]
    if changed_up:
        reasons.append("upstream " + ", ".join(changed_up) + " changed")
    if previous.get("code") not in (None, inputs["code"]):
        reasons.append("its code changed")
    return "; ".join(reasons) or "inputs differ from the latest output"


def plan(target: str, params: Params, project: Project, data_version: str,
         verify: bool = False, force: tuple[str, ...] = (),
         remote: bool = False) -> list[PlannedStage]:
    """The plan for ``target`` and its upstream stages (nothing is run or written); with
    ``remote``, the shared remote (if one is set) is asked which outputs it holds."""
    from scenellm.errors import ServiceError
    from scenellm.stages.shared_outputs import SharedOutputs

    shared = SharedOutputs.of(project) if remote else None
    fingerprints: dict[str, str] = {}
    out = []
    for name in upstream_closure(target):
        spec = stage_module(name).SPEC
        inputs = fingerprint_inputs(spec, params, data_version,
                                    {u: fingerprints[u] for u in spec.upstream})
        fp = fingerprints[name] = params_hash(inputs)
        stage_dir = project.stage_dir(name)
        final, partial = stage_dir / fp[:16], stage_dir / f"{fp[:16]}.partial"
        if name in force:
            out.append(PlannedStage(name, fp, "recompute", "--force"))
        elif (final / SUCCESS).exists():
            problem = intact(final, verify, refresh=False)
            out.append(PlannedStage(name, fp, "reuse", "inputs unchanged") if problem is None
                       else PlannedStage(name, fp, "recompute", problem))
        elif spec.resumable and partial.exists():
            out.append(PlannedStage(name, fp, "resume", "a killed or failed run left "
                                    f"{partial.name}"))
        else:
            why = what_changed(inputs, latest_record(stage_dir))
            try:
                on_remote = shared is not None and shared.holds(name, fp)
            except ServiceError as exc:
                why += f" (remote not asked: {exc})"
                on_remote = False
            out.append(PlannedStage(name, fp, "fetch", f"output on {shared.remote}; here: {why}")
                       if on_remote else PlannedStage(name, fp, "compute", why))
    return out
