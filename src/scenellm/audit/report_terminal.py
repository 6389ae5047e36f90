"""The audit in the terminal (rich): lineage tree, checks, metric comparison, verdict."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from scenellm.audit.graph import lineage_graph

STYLE = {
    "pass": "green",
    "fail": "bold red",
    "partial": "yellow",
    "not checkable": "dim",
    None: "cyan",
}
MAX_DIFF_ROWS = 20


def state(status: str | None) -> str:
    return f"[{STYLE[status]}]{escape(status or 'recorded')}[/]"


def lineage_tree(report) -> Tree:
    nodes, edges = lineage_graph(report)
    by_id = {n.id: n for n in nodes}

    def line(node_id: str) -> str:
        n = by_id[node_id]
        return f"[bold]{escape(n.label)}[/] [dim]{escape(n.sub)}[/]  {state(n.status)}"

    tree = Tree(line("run"))
    for context in ("parent", "git", "params", "model"):
        if context in by_id:
            tree.add(line(context))
    branch = tree.add(line("data"))
    # The pipeline reads as one chain; a stage with several inputs lists them.
    for node_id in [n.id for n in nodes if n.row == 1 and n.id != "data"]:
        inputs = [a for a, b in edges if b == node_id and a in by_id and by_id[a].row == 1]
        suffix = f"  [dim]← {', '.join(inputs)}[/]" if len(inputs) > 1 else ""
        branch = branch.add(line(node_id) + suffix)
    return tree


def checks_table(report) -> Table:
    table = Table(title="links", show_lines=False, expand=True)
    table.add_column("state", no_wrap=True)
    table.add_column("link", overflow="fold")
    table.add_column("detail", overflow="fold")
    for check in report.checks:  # identifiers in details are folded, never cut
        detail = Text(check.detail, overflow="fold",
                      style="dim" if check.status == "pass" else "")
        table.add_row(state(check.status), escape(check.link), detail)
    return table


def metrics_table(rep) -> Table:
    bad = [r for r in rep.rows if not r.ok]
    table = Table(title=f"metric differences ({len(bad)} of {len(rep.rows)})")
    for column in ("metric", "recorded", "reproduced", "|Δ|"):
        table.add_column(column)
    for r in bad[:MAX_DIFF_ROWS]:
        table.add_row(
            escape(r.key),
            repr(r.recorded),
            repr(r.reproduced),
            "—" if r.diff is None else f"{r.diff:.3g}",
        )
    return table


def print_report(report, console: Console | None = None) -> None:
    console = console or Console()
    console.rule(f"scenellm audit {escape(report.target.text)}")
    console.print(lineage_tree(report))
    console.print(checks_table(report))
    rep = report.reproduction
    if rep is not None:
        console.print(
            f"reproduce {rep.mode} on {rep.device or '—'}: {state(rep.status)} {escape(rep.detail)}"
        )
        if any(not r.ok for r in rep.rows):
            console.print(metrics_table(rep))
    counts = report.counts
    verdict = (
        "[bold green]AUDIT PASSED[/]" if report.verdict == "pass" else "[bold red]AUDIT FAILED[/]"
    )
    console.print(
        f"{verdict}  {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['not checkable']} not checkable"
    )
    if report.failed:
        console.print(f"broken links: {escape(', '.join(report.failed))}")
    if report.logged:
        console.print(
            f"report logged to run {report.recorded.run_id} under {escape(report.logged)}/"
        )
