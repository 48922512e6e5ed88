"""The isolation matrix as one table: a row per strategy (and schedule), a column per level."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from redpacket.interleave.timeline import Run
from redpacket.report.timeline_view import VERDICT_STYLE


def cell_text(run: Run) -> Text:
    text = Text(run.verdict.value, style=VERDICT_STYLE[run.verdict])
    text.append(f" {run.red_packets}")
    if run.errors:
        text.append(f" ({','.join(dict.fromkeys(run.errors))})", style="dim")
    return text


def matrix_table(runs: Sequence[Run], title: str = "isolation matrix") -> Table:
    levels = list(dict.fromkeys(run.isolation for run in runs))
    schedules = list(dict.fromkeys(run.schedule for run in runs))
    table = Table(title=title, caption="verdict, red packets for the order, (SQLSTATEs met)")
    table.add_column("strategy", style="bold", no_wrap=True)
    if len(schedules) > 1:
        table.add_column("schedule", no_wrap=True)
    for level in levels:
        table.add_column(level, no_wrap=True)
    rows: dict[tuple[str, str], dict[str, Run]] = {}
    for run in runs:
        rows.setdefault((run.strategy, run.schedule), {})[run.isolation] = run
    for (strategy, schedule), by_level in rows.items():
        cells: list[Text | str] = [strategy]
        if len(schedules) > 1:
            cells.append(schedule)
        cells += [
            cell_text(by_level[level]) if level in by_level else Text("-") for level in levels
        ]
        table.add_row(*cells)
    return table
