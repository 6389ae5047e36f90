"""The audit as one self-contained HTML page: verdict, lineage graph (inline SVG), checks,
metric comparison and the recorded run. Inline CSS only: no scripts, fonts or images to
fetch, so the page renders the same from an MLflow artifact, an e-mail or a file."""

from __future__ import annotations

from html import escape

from scenellm.audit.graph import COLOURS, lineage_graph, render_svg

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328}
main{max-width:1240px;margin:0 auto;padding:0 24px 40px}
header{padding:20px 24px;color:#fff}
header.pass{background:#1a7f37}header.fail{background:#cf222e}
header h1{margin:0;font-size:26px;letter-spacing:.5px}header p{margin:4px 0 0}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #eaeef2;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.detail{word-break:break-all}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
  font-weight:600;white-space:nowrap;border:1px solid}
svg .edge{fill:none;stroke:#57606a;stroke-width:1.5}svg .cross{stroke-dasharray:5 4}
svg text{text-anchor:middle;font-family:system-ui,sans-serif}
svg .label{font-size:13px;font-weight:600;fill:#1f2328}
svg .sub{font-size:11px;font-family:ui-monospace,monospace;fill:#57606a}
svg .state{font-size:10px;text-transform:uppercase;letter-spacing:.6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}dt{color:#57606a}
"""


def badge(status: str | None, text: str | None = None) -> str:
    stroke, fill = COLOURS[status]
    return (
        f'<span class="badge" style="color:{stroke};background:{fill};'
        f'border-color:{stroke}">{escape(text or status or "info")}</span>'
    )


def same(flag: bool) -> str:
    return badge("pass", "same") if flag else badge("partial", "differs")


def checks_table(report) -> str:
    rows = "".join(
        f"<tr><td>{badge(c.status)}</td><td><code>{escape(c.link)}</code></td>"
        f'<td class="detail">{escape(c.detail)}</td></tr>'
        for c in report.checks
    )
    return f"<table><tr><th>state</th><th>link</th><th>detail</th></tr>{rows}</table>"


def metric_rows(rows) -> str:
    def cell(v):
        return escape(repr(v)) if v is not None else "—"

    return "".join(
        f'<tr><td class="mono">{escape(r.key)}</td><td class="mono">'
        f'{cell(r.recorded)}</td><td class="mono">{cell(r.reproduced)}</td>'
        f'<td class="mono">{cell(r.diff)}</td><td>{badge("pass" if r.ok else "fail")}'
        "</td></tr>"
        for r in rows
    )


def metrics_section(report) -> str:
    rep = report.reproduction
    if rep is None:
        return (
            "<p>Not reproduced; run <code>scenellm audit TARGET --reproduce</code> "
            "(or <code>--full</code>) to recompute the metrics.</p>"
        )
    head = "<tr><th>metric</th><th>recorded</th><th>reproduced</th><th>|Δ|</th><th>state</th></tr>"
    bad = [r for r in rep.rows if not r.ok]
    stages = "".join(
        f"<tr><td>{escape(n)}</td><td>{same(s['fingerprint'])}</td>"
        f"<td>{same(s['output_hash'])}</td></tr>"
        for n, s in rep.stages.items()
    )
    tolerance = "—" if rep.tolerance is None else f"{rep.tolerance:g}"
    return (
        f"<p>{badge(rep.status)} <b>{escape(rep.mode)}</b> on <b>{escape(rep.device or '—')}"
        f"</b>, tolerance {tolerance}, {rep.seconds:.1f} s: {escape(rep.detail)}</p>"
        + (f"<h3>differences</h3><table>{head}{metric_rows(bad)}</table>" if bad else "")
        + (
            f"<details><summary>all {len(rep.rows)} numbers of metrics.json</summary>"
            f"<table>{head}{metric_rows(rep.rows)}</table></details>"
            if rep.rows
            else ""
        )
        + (
            "<h3>recomputed stages</h3><p>Byte-identical outputs are not required (only "
            "the metrics are compared).</p><table><tr><th>stage</th><th>same fingerprint"
            f"</th><th>same output bytes</th></tr>{stages}</table>"
            if stages
            else ""
        )
    )


def run_section(report) -> str:
    d = report.to_dict()["run"]
    items = {
        "run": f"{d['run_name']} ({d['run_id']})",
        "status": d["status"],
        "experiment": d["experiment_id"],
        "parent run": (d["parent"] or {}).get("run_id"),
        "study": d["study"],
        "trial": d["trial"],
        "prefect flow run": d["prefect_flow_run_id"],
        "git commit": d["git_commit"],
        "git dirty": d["git_dirty"],
        "data version": d["data_md5"],
        "params from": d["params_source"],
        "inherited from parent": ", ".join(d["inherited"]) or None,
        "registered": ", ".join(f"{m['name']} v{m['version']}" for m in d["models"]),
    }
    items |= {f"package {k}": v for k, v in sorted(d["packages"].items())}
    return (
        "<dl>"
        + "".join(
            f"<dt>{escape(k)}</dt><dd class='mono'>{escape(str(v))}</dd>"
            for k, v in items.items()
            if v not in (None, "")
        )
        + "</dl>"
    )


def render_html(report) -> str:
    nodes, edges = lineage_graph(report)
    tips = {
        n.id: "\n".join(
            f"{c.status}: {c.link}: {c.detail}" for c in report.checks if c.node == n.id
        )
        for n in nodes
    }
    counts = report.counts
    verdict = "AUDIT PASSED" if report.verdict == "pass" else "AUDIT FAILED"
    summary = (
        f"{counts['pass']} passed · {counts['fail']} failed · "
        f"{counts['not checkable']} not checkable"
    )
    failed = f"<p>broken links: {escape(', '.join(report.failed))}</p>" if report.failed else ""
    rec = report.recorded
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>scenellm audit: {escape(report.target.text)}</title><style>{CSS}</style></head>
<body><header class="{report.verdict}" id="verdict"><h1>{verdict}</h1>
<p>{escape(summary)}</p><p>target <code>{escape(report.target.text)}</code> → run
<code>{escape(rec.run_id)}</code> · audited {escape(report.created)}</p>{failed}</header>
<main><h2>Lineage</h2>{render_svg(nodes, edges, tips)}
<h2>Checks</h2>{checks_table(report)}
<h2>Metric comparison</h2>{metrics_section(report)}
<h2>Recorded run</h2>{run_section(report)}</main></body></html>
"""
