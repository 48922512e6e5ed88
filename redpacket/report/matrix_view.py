"""The isolation matrix as one table: a row per strategy (and schedule), a column per level."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from redpacket.interleave.timeline import Run
from redpacket.report.timeline_view import style_of
from redpacket.vocabulary import refusal

MATRIX_CAPTION = (
    "correct · duplicate · missing · refused (its code; safe to retry or not) · lost race"
    " (retry); met: errors the strategy handled or retried past"
)


def cell_words(run: Run) -> tuple[str, str]:
    """The cell as (verdict word, detail): ``refused``, ``40001, safe to retry``."""
    word = run.verdict.value
    failed = list(dict.fromkeys(run.failed_sqlstates))
    if word == "refused" and failed:
        return word, "; ".join(refusal(code) for code in failed)
    met = list(dict.fromkeys(e for e in run.errors if e not in failed))
    detail = f"{run.red_packets} red packets" if word == "duplicate" else ""
    if met:
        detail = (detail + "; " if detail else "") + f"met {', '.join(met)}"
    return word, detail


Cell = str | tuple[str, str]  # text, or a verdict as (word, detail)


def matrix_grid(runs: Sequence[Run]) -> tuple[list[str], list[list[Cell]]]:
    """(header, rows): a row per strategy (and schedule), a column per level."""
    levels = list(dict.fromkeys(run.isolation for run in runs))
    schedules = list(dict.fromkeys(run.schedule for run in runs))
    servers = list(dict.fromkeys(run.server for run in runs))
    header = ["strategy"] + (["server"] if len(servers) > 1 else [])
    header += (["schedule"] if len(schedules) > 1 else []) + levels
    by_row: dict[tuple[str, str, str], dict[str, Run]] = {}
    for run in runs:
        by_row.setdefault((run.strategy, run.server, run.schedule), {})[run.isolation] = run
    rows: list[list[Cell]] = []
    for (strategy, server, schedule), by_level in sorted(
        by_row.items(), key=lambda item: (item[0][0], servers.index(item[0][1]))
    ):
        row: list[Cell] = [strategy]
        row += [server] if len(servers) > 1 else []
        row += [schedule] if len(schedules) > 1 else []
        row += [cell_words(by_level[level]) if level in by_level else "-" for level in levels]
        rows.append(row)
    return header, rows


def matrix_table(runs: Sequence[Run], title: str = "isolation matrix") -> Table:
    header, rows = matrix_grid(runs)
    table = Table(title=title, caption=MATRIX_CAPTION)
    labels = sum(1 for column in header if column in ("strategy", "server", "schedule"))
    for index, column in enumerate(header):
        if index < labels:  # strategy, server, schedule: whole at any width, as names must be
            widest = max([len(column)] + [len(str(row[index])) for row in rows])
            table.add_column(
                column, style="bold" if index == 0 else "", no_wrap=True, min_width=widest
            )
        else:  # the verdicts wrap within their cells instead
            table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_drawn(cell) for cell in row))
    return table


def _drawn(cell: Cell) -> Text | str:
    if isinstance(cell, str):
        return cell
    word, detail = cell
    text = Text(word, style=style_of(word))
    if detail:
        text.append(f" ({detail})", style="dim")
    return text
