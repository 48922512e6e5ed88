"""Stress results as tables: one run in detail, or many side by side."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from redpacket.report.timeline_view import style_of
from redpacket.retry import LOST_RACE
from redpacket.stress.result import StressResult
from redpacket.vocabulary import refusal


def _failed(result: StressResult) -> str:
    """Refusals and lost races, each with its count: ``refused 40001 (safe to retry) x12``."""
    failed = result.tally.failed
    if not failed:
        return "0"
    parts = []
    for reason, count in sorted(failed.items()):
        if reason == LOST_RACE:
            parts.append(f"lost race x{count}")
        else:
            parts.append(f"refused {refusal(reason)} x{count}")
    return ", ".join(parts)


def _verdict(result: StressResult) -> Text:
    word = result.verdict
    check = result.check
    if check is None:
        return Text("unchecked: " + (result.error or "no check"), style="bold yellow")
    text = Text(word, style=style_of(word))
    parts = []
    if check.duplicate_orders:
        parts.append(f"{check.duplicate_orders} orders duplicated")
    if check.missing_orders:
        parts.append(f"{check.missing_orders} orders missing")
    if result.history_check is not None and not result.history_check.ok:
        parts.append(f"{result.history_check.violation_count} history violations")
    if parts:
        text.append(f" ({', '.join(parts)})")
    return text


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def stress_table(result: StressResult) -> Table:
    data = result.to_json()
    latency = data["latency_ms"]
    table = Table(title=f"stress: {result.plan.label}", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    rows: list[tuple[str, Text | str]] = [
        ("verdict", _verdict(result)),
        ("attempts", str(data["attempts"])),
        ("granted", str(data["granted"])),
        ("already granted", str(data["already_granted"])),
        ("failed", _failed(result)),
        ("retries", str(data["retries"])),
        ("unknown outcomes", str(data["unknown"])),
        ("orders with duplicates", _count(data["duplicate_orders"])),
        ("extra grants", _count(data["extra_grants"])),
        ("orders left without a grant", _count(data["missing_orders"])),
        (
            "throughput",
            f"{data['throughput_per_s']:,.0f} requests/s, of them {data['grants_per_s']:,.0f}"
            " grants/s",
        ),
        (
            "latency p50 / p95 / p99 / max",
            f"{latency['p50']} / {latency['p95']} / {latency['p99']} / {latency['max']} ms",
        ),
        ("elapsed", f"{data['elapsed_s']} s" + (" (interrupted)" if result.interrupted else "")),
    ]
    if result.tally.interrupted:
        rows.insert(
            rows.index(("orders with duplicates", _count(data["duplicate_orders"]))),
            (
                "cut short by the interruption",
                f"{result.tally.interrupted} requests (not committed)",
            ),
        )
    history = result.history_check
    if history is not None:
        resolved = (
            f"; unknown resolved: {history.unknown_committed} committed,"
            f" {history.unknown_not_committed} not"
            if history.unknown
            else ""
        )
        verdict = "ok" if history.ok else f"{history.violation_count} violations"
        rows.append(("history check", f"{verdict} ({history.requests} requests{resolved})"))
    faults = {k: v for k, v in result.faults.items() if v and k != "unknown_outcomes"}
    if faults:
        rows.append(("faults", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in faults.items())))
    for name, value in rows:
        table.add_row(name, value)
    return table


COMPARE_CAPTION = (
    "dup: orders with duplicates; extra: grants beyond one; missing: orders never granted;"
    " failed: requests refused (with the code) or that lost the race; requests/s: requests"
    " finished per second, granted or not"
)
Cell = str | tuple[str, str]  # text, or a verdict as (word, detail)


def compare_grid(
    results: Sequence[StressResult], title: str = "strategy comparison"
) -> tuple[str, list[str], list[list[Cell]]]:
    """(title, header, rows): a row per run; workload and workers only when they vary."""
    show_workload = len({r.plan.workload for r in results}) > 1
    show_workers = len({r.plan.workers for r in results}) > 1
    constant = []
    if results and not show_workload:
        constant.append(f"{results[0].plan.workload.value} workload")
    if results and not show_workers:
        constant.append(f"{results[0].plan.workers} workers")
    header = ["strategy", "isolation"]
    header += ["workload"] if show_workload else []
    header += ["workers"] if show_workers else []
    header += ["verdict", "dup", "extra", "missing", "failed", "retries", "requests/s", "p50 ms",
               "p99 ms"]  # fmt: skip
    rows: list[list[Cell]] = []
    for result in results:
        plan, check = result.plan, result.check
        latency = result.tally.latency.summary_ms()
        row: list[Cell] = [plan.strategy.name, plan.isolation.value]
        row += [plan.workload.value] if show_workload else []
        row += [str(plan.workers)] if show_workers else []
        row += [
            (result.verdict, ""),
            _count(check.duplicate_orders if check else None),
            _count(check.extra_grants if check else None),
            _count(check.missing_orders if check else None),
            _failed(result),
            str(result.tally.retries),
            f"{result.throughput_per_s:,.0f}",
            f"{latency['p50']:.2f}",
            f"{latency['p99']:.2f}",
        ]
        rows.append(row)
    return title + (f" ({', '.join(constant)})" if constant else ""), header, rows


def compare_table(results: Sequence[StressResult], title: str = "strategy comparison") -> Table:
    heading, header, rows = compare_grid(results, title)
    table = Table(title=heading, caption=COMPARE_CAPTION)
    for column in header:
        left = column in ("strategy", "isolation", "workload", "verdict", "failed")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(_drawn(cell) for cell in row))
    return table


def _drawn(cell: Cell) -> Text | str:
    if isinstance(cell, tuple):
        word, detail = cell
        text = Text(word, style=style_of(word) if word != "unchecked" else "bold yellow")
        if detail:
            text.append(f" ({detail})", style="dim")
        return text
    return cell


SHOWN_VIOLATIONS = 3


def violations_text(result: StressResult, shown: int = SHOWN_VIOLATIONS) -> str:
    """The history checker's findings for a person: how many of each rule, and the first
    few with the requests involved; ``--json`` has every example the checker kept."""
    history = result.history_check
    if history is None or history.ok:
        return ""
    kept = history.violations
    rules = Counter(violation.rule for violation in kept)
    counted = ", ".join(f"{rule} {count}" for rule, count in rules.most_common())
    of_kept = "" if len(kept) == history.violation_count else f" (of the {len(kept)} kept: "
    lines = [
        f"history check: {history.violation_count} violation(s)"
        + (f"{of_kept}{counted})" if of_kept else f": {counted}")
    ]
    lines += [violation.describe() for violation in kept[:shown]]
    if history.violation_count > shown:
        lines.append(
            f"... and {history.violation_count - min(shown, len(kept))} more"
            " (--json lists every one kept)"
        )
    return "\n".join(lines)
