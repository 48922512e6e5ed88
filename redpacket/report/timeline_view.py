"""A run's timeline as two (or more) columns side by side, time running down."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from redpacket.interleave.explain import Explanation
from redpacket.interleave.timeline import Event, Kind, Run
from redpacket.report.marks import LEGEND, blocked_positions, event_marks, rows_text
from redpacket.vocabulary import MEANING, sqlstate_name

DRAWN = {"good": "bold green", "bad": "bold red", "safe": "bold yellow", "odd": "bold magenta"}
MARK_STYLE = {"wait": "yellow", "resume": "yellow", "error": "red", "snapshot": "cyan",
              "decision": "bold", "done": "green", "current": "magenta"}  # fmt: skip


def style_of(word: str) -> str:
    """The colour of a verdict word: by what it means for the data."""
    return DRAWN[MEANING[word][1]]


def describe(event: Event) -> Text:
    text = Text()
    if event.attempt > 1 and event.action == "begin" and event.kind is not Kind.RESUME:
        text.append(f"retry: attempt {event.attempt}\n", style="magenta")
    if event.kind is Kind.RESUME:
        text.append(f"{event.label} resumes ", style="yellow")
    elif event.step_number:
        text.append(f"{event.label}\n", style="bold")
        text.append(event.sql + "\n", style="dim")
    else:
        text.append(event.sql + " ", style="bold")
    if event.step_number and event.kind is not Kind.WAIT and not event.sqlstate:
        text.append(rows_text(event.rows) + " ")
    for kind, mark in event_marks(event):
        if kind == "error" and event.sqlstate:
            mark = f"error {sqlstate_name(event.sqlstate)}"
        text.append(f"[{mark}] ", style=MARK_STYLE.get(kind, ""))
    return text


def timeline_table(run: Run) -> Table:
    sessions = len(run.sessions)
    table = Table(
        title=f"{run.strategy} at {run.isolation}, schedule {run.schedule}"
        f" (order {run.order_id}{f', retries {run.retries}' if run.retries else ''}"
        f"{', ' + ', '.join(run.settings) if run.settings else ''})",
        show_lines=True,
        expand=False,
    )
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    for number in range(1, sessions + 1):
        table.add_column(f"T{number}", overflow="fold", ratio=1)
    blocked = blocked_positions(run)
    for position, event in enumerate(run.events, start=1):
        cells: list[Text | str] = [
            Text("┆ blocked", style="yellow") if position in blocked.get(n, ()) else ""
            for n in range(1, sessions + 1)
        ]
        cells[event.session - 1] = describe(event)
        table.add_row(str(position), *cells)
    return table


def verdict_detail(run: Run) -> str:
    detail = f"{run.red_packets} red packet(s) for order {run.order_id}"
    if run.errors:
        detail += f"; errors met: {', '.join(run.errors)}"
    return detail


def verdict_text(run: Run) -> Text:
    text = Text("verdict: ")
    text.append(run.verdict.value, style=style_of(run.verdict.value))
    text.append(f" — {verdict_detail(run)}")
    return text


def why_text(explanation: Explanation) -> str:
    return str(explanation)


def legend_table() -> Table:
    table = Table(title="how to read a timeline", show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for mark, meaning in LEGEND:
        table.add_row(Text(f"[{mark}]"), meaning)
    return table
