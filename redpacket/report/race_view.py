"""A race through the proxy as ``explain`` draws a run: one column per participant, time
running down, the SQL as the server received it and the marks (waits seen on the
server, resumes, the server's errors, the faults' cuts)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from redpacket.race.timeline import RaceEvent, RaceResult

MARK_STYLE = {"wait": "yellow", "resume": "yellow", "resume-error": "yellow", "error": "red"}


def _blocked(events: tuple[RaceEvent, ...]) -> dict[int, set[int]]:
    """Positions at which each participant waited on the server for another's lock."""
    blocked: dict[int, set[int]] = {}
    since: dict[int, int] = {}
    for event in events:
        if event.kind == "wait":
            since[event.call] = event.position
        elif event.kind in ("resume", "resume-error") and event.call in since:
            start = since.pop(event.call)
            blocked.setdefault(event.call, set()).update(range(start + 1, event.position))
    last = events[-1].position + 1 if events else 0
    for call, start in since.items():  # still waiting at the end
        blocked.setdefault(call, set()).update(range(start + 1, last))
    return blocked


def _cell(event: RaceEvent) -> Text:
    text = Text()
    flat = " ".join(event.sql.split())
    if event.kind in ("resume", "resume-error"):
        text.append(f"#{event.number} returns ", style="yellow")
    else:
        text.append(f"#{event.number} ", style="bold")
        text.append(flat + " ")
    who = ", ".join(f"T{n}" if n else "a session outside the race" for n in event.waited_on)
    if event.kind == "wait":
        text.append(f"[waits for {who}] ", style="yellow")
    elif event.kind in ("resume", "resume-error"):
        text.append(f"[{who} let it go] ", style="yellow")
    if event.error is not None:
        code, message = event.error
        said = f"[{code}: {message}]" if code.startswith("cut-") else f"[error {code}: {message}]"
        text.append(said, style="magenta" if code.startswith("cut-") else "red")
    return text


def race_table(result: RaceResult, title: str) -> Table:
    calls = len(result.calls)
    table = Table(title=f"{title} on {result.engine}", show_lines=True, expand=False)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    for number in range(1, calls + 1):
        table.add_column(f"T{number}", overflow="fold", ratio=1)
    blocked = _blocked(result.events)
    for event in result.events:
        cells: list[Text | str] = [
            Text("┆ blocked", style="yellow") if event.position in blocked.get(n, ()) else ""
            for n in range(1, calls + 1)
        ]
        cells[event.call - 1] = _cell(event)
        table.add_row(str(event.position), *cells)
    return table
