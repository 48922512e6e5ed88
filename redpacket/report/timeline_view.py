"""A run's timeline as two (or more) columns side by side, time running down."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from redpacket.interleave.explain import sqlstate_name
from redpacket.interleave.timeline import Event, Kind, Run, Verdict

VERDICT_STYLE = {
    Verdict.CORRECT: "bold green",
    Verdict.DUPLICATE: "bold red",
    Verdict.MISSING: "bold red",
    Verdict.ERROR: "bold yellow",
    Verdict.STUCK: "bold magenta",
}


def _rows(rows: tuple[tuple[Any, ...], ...] | None) -> str:
    if rows is None:
        return ""
    if not rows:
        return "→ no row"
    shown = ", ".join(str(value) for value in rows[0])
    return f"→ ({shown})" if len(rows) == 1 else f"→ {len(rows)} rows"


def describe(event: Event) -> Text:
    text = Text()
    if event.attempt > 1 and event.action == "begin" and event.kind is not Kind.RESUME:
        text.append(f"retry: attempt {event.attempt}\n", style="magenta")
    if event.kind is Kind.RESUME:
        text.append(f"↳ {event.label} resumes: ", style="yellow")
    elif event.step_number:
        text.append(f"{event.label}\n", style="bold")
        text.append(event.sql + "\n", style="dim")
    else:
        text.append(event.sql + " ", style="bold")
    if event.kind is Kind.WAIT:
        whom = ", ".join(f"T{w}" if w else "another backend" for w in event.waited_on)
        text.append(f"⏳ waits for {whom}", style="yellow")
    elif event.sqlstate:
        text.append(f"✗ {sqlstate_name(event.sqlstate)}", style="red")
    elif event.step_number:
        text.append(_rows(event.rows))
    else:
        text.append("✓", style="green")
    if event.takes_snapshot and event.kind is not Kind.RESUME:
        text.append("  📷 snapshot", style="cyan")
    if event.decision:
        text.append(f"  ⇒ {event.decision.replace('_', ' ')}", style="bold")
    return text


def timeline_table(run: Run) -> Table:
    sessions = len(run.sessions)
    table = Table(
        title=f"{run.strategy} at {run.isolation}, schedule {run.schedule}"
        f" (order {run.order_id}{f', retries {run.retries}' if run.retries else ''})",
        show_lines=True,
        expand=False,
    )
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    for number in range(1, sessions + 1):
        table.add_column(f"T{number}", overflow="fold", ratio=1)
    for position, event in enumerate(run.events, start=1):
        cells: list[Text | str] = [""] * sessions
        cells[event.session - 1] = describe(event)
        table.add_row(str(position), *cells)
    return table


def verdict_text(run: Run) -> Text:
    text = Text("verdict: ")
    text.append(run.verdict.value.upper(), style=VERDICT_STYLE[run.verdict])
    text.append(f" — {run.red_packets} red packet(s) for order {run.order_id}")
    if run.errors:
        text.append(f"; errors: {', '.join(run.errors)}")
    return text
