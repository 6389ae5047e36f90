"""The lineage graph of an audit and its inline SVG drawing.

Two rows: the run's context (git commit, params, parent flow / study, the run, its
registered model) above the pipeline (data version → prepare → features → detect →
vqvae → finetune → evaluate → reproduction). Edges follow each stage's declared upstream stages;
a node is coloured by the worst state of its checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from scenellm.stages.registry import PIPELINE, stage_module

W, H, GAP, TOP, ROW = 150, 58, 24, 70, 150  # node box, gap, first row y, row distance
FITS = 22  # label characters a box holds at the label's font size
COLOURS = {  # status → (stroke, fill)
    "pass": ("#1a7f37", "#dafbe1"),
    "fail": ("#cf222e", "#ffebe9"),
    "partial": ("#9a6700", "#fff8c5"),
    "not checkable": ("#6e7781", "#f6f8fa"),
    None: ("#0969da", "#ddf4ff"),
}


@dataclass
class Node:
    id: str
    label: str
    sub: str
    status: str | None  # None: nothing to check at this node
    row: int
    col: int = 0


def lineage_graph(report) -> tuple[list[Node], list[tuple[str, str]]]:
    """``(nodes, edges)``; an edge ``(a, b)`` reads "a feeds b"."""
    rec, short = report.recorded, lambda v: (v or "—")[:12]
    context = [
        Node("git", "git commit", short(rec.git_commit), report.node_status("git"), 0),
        Node("params", "params", rec.params_source or "—", report.node_status("params"), 0),
    ]
    parent = rec.parent
    if rec.lineage["study"] or parent or rec.lineage["prefect_flow_run_id"]:
        label = (
            f"study {rec.lineage['study']}"
            if rec.lineage["study"]
            else "flow run"
            if rec.lineage["prefect_flow_run_id"]
            else "parent run"
        )
        ident = parent["run_id"] if parent else rec.lineage["prefect_flow_run_id"]
        context.append(Node("parent", label, short(ident), None, 0))
    trial = f" · trial {rec.trial}" if rec.trial is not None else ""
    context.append(Node("run", f"run {rec.run_name}{trial}", short(rec.run_id), None, 0))
    models = report.target.model or (rec.models[0] if rec.models else None)
    if models:
        aliases = " @" + ",".join(models.get("aliases", [])) if models.get("aliases") else ""
        context.append(
            Node(
                "model",
                f"{models['name']} v{models['version']}",
                aliases.strip() or "registered",
                report.node_status("model"),
                0,
            )
        )
    pipeline = [Node("data", "data version", short(rec.data_md5), report.node_status("data"), 1)]
    pipeline += [
        Node(
            n,
            n,
            short(rec.stages[n].fingerprint if n in rec.stages else None),
            report.node_status(n),
            1,
        )
        for n in PIPELINE
    ]
    if report.reproduction is not None:
        pipeline.append(
            Node(
                "reproduce",
                f"reproduce {report.reproduction.mode}",
                report.reproduction.device or "—",
                report.node_status("reproduce"),
                1,
            )
        )
    for row in (context, pipeline):
        for col, node in enumerate(row):
            node.col = col
    edges = [("git", "run"), ("params", "run"), ("run", "data"), ("data", "prepare")]
    edges += [("parent", "run")] * any(n.id == "parent" for n in context)
    edges += [("run", "model"), ("finetune", "model")] * bool(models)
    edges += [(dep, n) for n in PIPELINE for dep in stage_module(n).SPEC.upstream]
    edges += [("evaluate", "reproduce")] * (report.reproduction is not None)
    return context + pipeline, edges


def _box(node: Node) -> tuple[float, float]:
    return GAP + node.col * (W + GAP), TOP + node.row * ROW


def _edge(a: Node, b: Node) -> str:
    (ax, ay), (bx, by) = _box(a), _box(b)
    if a.row != b.row:  # straight down (or up) between the rows
        x1, y1 = ax + W / 2, ay + (H if a.row < b.row else 0)
        x2, y2 = bx + W / 2, by + (0 if a.row < b.row else H)
        return f'<path d="M{x1},{y1} L{x2},{y2}" class="edge cross" marker-end="url(#arrow)"/>'
    if abs(a.col - b.col) == 1:
        x1, x2 = (ax + W, bx) if a.col < b.col else (ax, bx + W)
        return (
            f'<path d="M{x1},{ay + H / 2} L{x2},{by + H / 2}" class="edge" '
            'marker-end="url(#arrow)"/>'
        )
    lift = 26 + 14 * abs(a.col - b.col)  # arcs over the row above, under the row below
    y, bend = (ay, ay - lift) if a.row == 0 else (ay + H, ay + H + lift)
    spread = 6 * (b.col - a.col)  # arcs from one node leave (and enter) at distinct points
    x1, x2 = ax + W / 2 + spread, bx + W / 2 - spread
    return (
        f'<path d="M{x1},{y} C{x1},{bend} {x2},{bend} {x2},{y}" class="edge" '
        'marker-end="url(#arrow)"/>'
    )


def _fit(label: str) -> str:
    """A label longer than the box holds is squeezed into it, never cut."""
    return "" if len(label) <= FITS else \
        f' textLength="{W - 12}" lengthAdjust="spacingAndGlyphs"'


def render_svg(nodes: list[Node], edges: list[tuple[str, str]], tooltips: dict[str, str]) -> str:
    """Inline SVG (no scripts, no external references) of the lineage graph."""
    by_id = {n.id: n for n in nodes}
    cols = max(n.col for n in nodes) + 1
    width, height = GAP + cols * (W + GAP), TOP + ROW + H + 110
    parts = [
        f'<svg id="lineage-graph" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-label="lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>',
    ]
    parts += [_edge(by_id[a], by_id[b]) for a, b in edges if a in by_id and b in by_id]
    for node in nodes:
        x, y = _box(node)
        stroke, fill = COLOURS[node.status]
        state = node.status or "recorded"
        parts.append(
            f'<g class="node" data-node="{node.id}" data-status="{escape(state)}">'
            f"<title>{escape(tooltips.get(node.id, state))}</title>"
            f'<rect x="{x}" y="{y}" width="{W}" height="{H}" rx="8" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="2"/>'
            f'<text x="{x + W / 2}" y="{y + 20}" class="label"{_fit(node.label)}>'
            f"{escape(node.label)}</text>"
            f'<text x="{x + W / 2}" y="{y + 36}" class="sub">{escape(node.sub)}</text>'
            f'<text x="{x + W / 2}" y="{y + 51}" class="state" fill="{stroke}">'
            f"{escape(state)}</text></g>"
        )
    parts.append("</svg>")
    return "\n".join(parts)
