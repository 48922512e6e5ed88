"""A spec run as a page: one timeline per permutation, one column per session.

The same events the text output is made of, laid out for a class: each step in its
session's column, a step that waited shaded down its column until it completed, its
results under it, errors and notices marked as in the other timelines.
"""

from __future__ import annotations

from html import escape

from redpacket.specs.events import (
    Event,
    Failure,
    Notice,
    Notify,
    PermutationStarted,
    Problem,
    SendFailed,
    SetupResult,
    StepCanceled,
    StepCompleted,
    StepResult,
    StepWaiting,
    Table,
)
from redpacket.specs.output import failure
from redpacket.specs.run import SpecRun


def result_html(result: Table | Failure) -> str:
    if isinstance(result, Failure):
        return f'<span class="mark error">{escape(failure(result).strip())}</span>'
    head = "".join(f"<th>{escape(name)}</th>" for name in result.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(v) if v is not None else ''}</td>" for v in row) + "</tr>"
        for row in result.rows
    )
    return f'<table class="spec-result"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _cell(event: Event) -> tuple[str | None, str]:
    """(session or None for the whole row, inner HTML)."""
    match event:
        case StepWaiting(step=step, session=session, sql=sql, forced=forced):
            why = "held back by its blockers" if forced else "waits for a lock (server)"
            return session, (
                f'<span class="label">{escape(step)}</span><code>{escape(sql)}</code>'
                f'<span class="mark wait">{why}</span>'
            )
        case StepCompleted(step=step, session=session, sql=sql, after_wait=True):
            return session, f'<span class="label">{escape(step)}</span>'                 \
                            '<span class="mark resume">completed</span>'  # fmt: skip
        case StepCompleted(step=step, session=session, sql=sql):
            return session, f'<span class="label">{escape(step)}</span><code>{escape(sql)}</code>'
        case StepResult(session=session, result=result):
            return session, result_html(result)
        case Notice(session=session, text=text):
            return session, f'<span class="mark">{escape(text.strip())}</span>'
        case Notify(session=session, channel=channel, payload=payload, sender=sender):
            return session, (
                f'<span class="mark">NOTIFY {escape(channel)} "{escape(payload)}"'
                f" from {escape(sender)}</span>"
            )
        case SendFailed(step=step, message=message):
            text = f"{step} could not be sent: {message.strip()}"
            return None, f'<span class="mark error">{escape(text)}</span>'
        case StepCanceled(step=step, seconds=seconds):
            return (
                None,
                f'<span class="mark error">{escape(step)} cancelled after {seconds} s</span>',
            )
        case SetupResult(table=table, session=session):
            where = f"{escape(session)}'s setup or teardown" if session else "setup or teardown"
            return None, f"{where} " + result_html(table)
        case Problem(text=text, fatal=fatal):
            css = "error" if fatal else ""
            return None, f'<span class="mark {css}">{escape(text)}</span>'
    return None, ""


def spec_sections(run: SpecRun) -> list[str]:
    sessions = [session.name for session in run.spec.sessions]
    sections = [f"<h2>{escape(run.spec.name)} on {escape(run.server)}</h2>"]
    rows: list[str] = []
    waiting: set[str] = set()
    started = False

    def close_table() -> None:
        if rows:
            head = "".join(f"<th>{escape(name)}</th>" for name in sessions)
            sections.append(
                f'<table class="timeline spec-timeline"><thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>"
            )
            rows.clear()

    for event in run.events:
        if isinstance(event, PermutationStarted):
            started = True
            close_table()
            waiting.clear()
            sections.append(
                f'<p class="table-title">permutation: {escape(" ".join(event.steps))}</p>'
            )
            continue
        where, inner = _cell(event)
        if not inner:
            continue
        if not started:  # a warning before the first permutation: not part of a timeline
            sections.append(f"<p>{inner}</p>")
            continue
        if isinstance(event, StepCompleted) and event.after_wait:
            waiting.discard(event.session)
        if where is None:
            rows.append(f'<tr><td colspan="{len(sessions)}">{inner}</td></tr>')
        else:
            cells = []
            for name in sessions:
                if name == where:
                    cells.append(f'<td class="event" data-session="{escape(name)}">{inner}</td>')
                elif name in waiting:
                    cells.append(f'<td class="waiting" title="{escape(name)} is waiting"></td>')
                else:
                    cells.append("<td></td>")
            rows.append(f'<tr class="timeline-event">{"".join(cells)}</tr>')
        if isinstance(event, StepWaiting):
            waiting.add(event.session)
    close_table()
    if run.aborted:
        sections.append(f'<p class="mark error">stopped: {escape(run.aborted)}</p>')
    return sections
