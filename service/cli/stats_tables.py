"""``dyna-cache stats`` as tables: what the cache served, and what shadow mode measured."""

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table


def _numbers_table(title: str, columns: tuple[str, ...]) -> Table:
    """A table with a namespace column, then ``columns`` of right-aligned numbers."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("namespace", no_wrap=True, overflow="fold")
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    return table


def wrong_cell(rate: dict[str, Any] | None) -> str:
    """The audited wrong-answer rate as ``4.2 [2–8] 120`` (estimate, 95 % interval,
    audits); ``-`` without audits."""
    if not rate or not rate.get("audits"):
        return "-"
    return (
        f"{100 * rate['estimate']:.1f} [{100 * rate['low']:.0f}–{100 * rate['high']:.0f}] "
        f"{rate['audits']}"
    )


def stats_table(stats: dict[str, Any]) -> Table:
    """/v1/stats as a table: one row per namespace and a total."""
    table = _numbers_table(
        "Dyna-Cache",
        (
            "entries",
            "reqs",
            "hits",
            "misses",
            "hit %",
            "hit p50\nms",
            "miss p50\nms",
            "saved\n$",
            "wrong %\n[95 % CI] n",
        ),
    )

    def row(name: str, numbers: dict[str, Any], style: str | None = None) -> None:
        latency = numbers.get("latency_ms", {})
        table.add_row(
            name,
            str(numbers["entries"]),
            str(numbers["requests"]),
            str(numbers["hits"]),
            str(numbers["misses"]),
            f"{100 * numbers['hit_rate']:.1f}",
            f"{latency.get('hit', {}).get('p50', 0):.1f}",
            f"{latency.get('miss', {}).get('p50', 0):.0f}",
            f"{numbers['cost_saved_usd']:.4f}",
            wrong_cell(numbers.get("wrong_answer_rate")),
            style=style,
        )

    for ns, numbers in sorted(stats["namespaces"].items()):
        row(ns, numbers)
    row("total", stats, style="bold")
    decision = stats.get("decision", {})
    notes = []
    if decision.get("stage"):
        version = f" ({decision['version']})" if decision.get("version") else ""
        notes.append(f"decision stage: {decision['stage']}{version}")
    audits = stats.get("audits", {})
    if audits.get("enabled") is False:
        notes.append(f"audits off: {audits.get('reason')}")
    if notes:
        table.caption = "; ".join(notes)
    return table


def shadow_table(stats: dict[str, Any]) -> Table | None:
    """What shadow mode would have served: one row per namespace that ran it, and a total
    (None: none did)."""
    if "shadow" not in stats:
        return None
    table = _numbers_table(
        "Shadow mode: what the cache would have served",
        (
            "reqs",
            "hit %",
            "exact %",
            "semantic %",
            "calls\nsaved",
            "saved\n$",
            "saved\ns",
            "wrong %\n[95 % CI] n",
            "bound 5 %\nserves",
        ),
    )

    def row(name: str, shadow: dict[str, Any], style: str | None = None) -> None:
        bound = next((b for b in shadow["bounds"] if b["max_wrong_rate"] == 0.05), None)
        share = bound["share_of_semantic_hits"] if bound else None
        table.add_row(
            name,
            str(shadow["requests"]),
            f"{100 * shadow['hit_rate']:.1f}",
            f"{100 * shadow['exact_hit_rate']:.1f}",
            f"{100 * shadow['semantic_hit_rate']:.1f}",
            str(shadow["llm_calls_saved"]),
            f"{shadow['cost_saved_usd']:.4f}",
            f"{shadow['latency_saved_ms'] / 1000:.1f}",
            wrong_cell(shadow["wrong_answer_rate"]),
            "-" if share is None else f"{100 * share:.0f} %",
            style=style,
        )

    for ns, numbers in sorted(stats["namespaces"].items()):
        if "shadow" in numbers:
            row(ns, numbers["shadow"])
    row("total", stats["shadow"], style="bold")
    table.caption = "bound 5 %: the share of would-be semantic HITs max_wrong_rate=0.05 serves"
    return table


def stats_tables(stats: dict[str, Any]) -> Group:
    """/v1/stats as ``dyna-cache stats`` shows it: served, and what shadow mode measured."""
    shadow = shadow_table(stats)
    return Group(stats_table(stats), *([shadow] if shadow is not None else []))
