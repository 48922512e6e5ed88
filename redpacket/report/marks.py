"""How a timeline event is marked, in the terminal and in HTML alike, and the legend."""

from __future__ import annotations

from typing import Any

from redpacket.interleave.timeline import Event, Kind, Run


def rows_text(rows: tuple[tuple[Any, ...], ...] | None) -> str:
    if rows is None:
        return ""
    if not rows:
        return "→ no row"
    shown = ", ".join(str(value) for value in rows[0])
    return f"→ ({shown})" if len(rows) == 1 else f"→ {len(rows)} rows"


def event_marks(event: Event) -> list[tuple[str, str]]:
    """The marks of a timeline event, as (kind, text): the same in the terminal and in HTML."""
    marks: list[tuple[str, str]] = []
    if event.kind is Kind.WAIT:
        whom = ", ".join(f"T{w}" if w else "another backend" for w in event.waited_on)
        marks.append(("wait", f"waits for {whom}"))
    if event.kind is Kind.RESUME:
        marks.append(("resume", "released"))
    if event.sqlstate:
        marks.append(("error", f"error {event.sqlstate}"))
    elif not event.step_number and event.kind is not Kind.WAIT:
        marks.append(("done", "ok"))
    if event.takes_snapshot and event.kind is not Kind.RESUME:
        marks.append(("snapshot", "snapshot"))
    if event.read == "current read" and event.kind is not Kind.WAIT:
        marks.append(("current", "current read"))
    if event.decision:
        marks.append(("decision", "⇒ " + event.decision.replace("_", " ")))
    return marks


LEGEND: list[tuple[str, str]] = [
    ("snapshot", "this statement fixed the snapshot the session reads with (at read"
     " committed every statement takes its own)"),
    ("current read", "InnoDB: a locking read or a write reads the newest committed row,"
     " whatever the snapshot"),
    ("waits for T1", "the server reports the statement blocked on a lock T1 holds"
     " (pg_blocking_pids; InnoDB's lock-wait tables): time runs down the page, and the"
     " session stays blocked"),
    ("released", "the blocked statement completed, right after what released it"),
    ("error 40001 / error 1062", "the server refused the statement: PostgreSQL's SQLSTATE,"
     " MySQL's own error number (1062: SQLSTATE 23000; 1213: 40001)"),
    ("⇒ granted / already granted", "where the strategy decided how the attempt ends"),
    ("→ (1) / → no row", "what the statement returned"),
]  # fmt: skip


def blocked_positions(run: Run) -> dict[int, set[int]]:
    """For each session, the positions at which it is blocked: after its wait, before it resumes."""
    spans: dict[int, set[int]] = {}
    since: dict[int, int] = {}
    for position, event in enumerate(run.events, start=1):
        if event.kind is Kind.WAIT:
            since[event.session] = position
        elif event.kind is Kind.RESUME and event.session in since:
            start = since.pop(event.session)
            spans.setdefault(event.session, set()).update(range(start + 1, position))
    return spans
