"""Stress results as tables: one run in detail, or many side by side."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from redpacket.stress.result import StressResult


def _failed(result: StressResult) -> str:
    failed = result.tally.failed
    return ", ".join(f"{k}: {v}" for k, v in sorted(failed.items())) if failed else "0"


def _verdict(result: StressResult) -> Text:
    if result.correct:
        return Text("correct", style="bold green")
    check = result.check
    if check is None:
        return Text("unchecked: " + (result.error or "no check"), style="bold yellow")
    parts = []
    if check.duplicate_orders:
        parts.append(f"{check.duplicate_orders} duplicated")
    if check.missing_orders:
        parts.append(f"{check.missing_orders} missing")
    if result.history_check is not None and not result.history_check.ok:
        parts.append(f"{result.history_check.violation_count} history violations")
    return Text(", ".join(parts), style="bold red")


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
        ("throughput", f"{data['throughput_per_s']:,.0f} grants/s"),
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


def compare_table(results: Sequence[StressResult], title: str = "strategy comparison") -> Table:
    """A row per run; workload and worker columns only when they vary."""
    show_workload = len({r.plan.workload for r in results}) > 1
    show_workers = len({r.plan.workers for r in results}) > 1
    constant = []
    if results and not show_workload:
        constant.append(f"{results[0].plan.workload.value} workload")
    if results and not show_workers:
        constant.append(f"{results[0].plan.workers} workers")
    table = Table(
        title=title + (f" ({', '.join(constant)})" if constant else ""),
        caption="dup: orders with duplicates; extra: grants beyond one;"
        " missing: orders never granted",
    )
    table.add_column("strategy", no_wrap=True)
    table.add_column("isolation", no_wrap=True)
    if show_workload:
        table.add_column("workload", no_wrap=True)
    if show_workers:
        table.add_column("workers", justify="right")
    for column in ("verdict", "dup", "extra", "missing", "failed", "retries", "grants/s", "p50 ms",
                   "p99 ms"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("verdict", "failed") else "right",
                         no_wrap=True)  # fmt: skip
    for result in results:
        plan = result.plan
        latency = result.tally.latency.summary_ms()
        row: list[Text | str] = [plan.strategy.name, plan.isolation.value]
        if show_workload:
            row.append(plan.workload.value)
        if show_workers:
            row.append(str(plan.workers))
        verdict = Text("correct", "green") if result.correct else Text("WRONG", "bold red")
        row += [
            verdict,
            _count(result.check.duplicate_orders if result.check else None),
            _count(result.check.extra_grants if result.check else None),
            _count(result.check.missing_orders if result.check else None),
            _failed(result),
            str(result.tally.retries),
            f"{result.throughput_per_s:,.0f}",
            f"{latency['p50']:.2f}",
            f"{latency['p99']:.2f}",
        ]
        table.add_row(*row)
    return table


def violations_text(result: StressResult) -> str:
    """The history checker's violations, each with the requests involved."""
    history = result.history_check
    if history is None or history.ok:
        return ""
    lines = [f"history check: {history.violation_count} violation(s)"]
    lines += [violation.describe() for violation in history.violations]
    if history.violation_count > len(history.violations):
        lines.append(f"... and {history.violation_count - len(history.violations)} more")
    return "\n".join(lines)
