"""Pages a teacher can project: self-contained HTML, no script, no emoji, no web fonts.

A timeline is an HTML table with one column per session; a statement that waited
is joined to the statement that released it by a bar down the waiting session's
column; verdicts are coloured by what they mean for the data. Everything is drawn
with CSS and plain text, so any browser shows the same page offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from redpacket.interleave.timeline import Event, Kind, Run
from redpacket.report.marks import blocked_positions, event_marks, rows_text
from redpacket.report.matrix_view import MATRIX_CAPTION, matrix_grid
from redpacket.report.stress_view import COMPARE_CAPTION, compare_grid
from redpacket.specs.anomalies import Cell
from redpacket.stress.result import StressResult

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 78rem; color: #1d2126; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem;
     border-bottom: 1px solid #ccd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; }
th, td { border: 1px solid #ccd3dc; padding: .35rem .55rem; vertical-align: top; text-align: left; }
th { background: #eef1f5; }
td.pos { color: #778; text-align: right; font-variant-numeric: tabular-nums; }
td.event .label { font-weight: 600; }
td.event code { display: block; white-space: pre-wrap; color: #445; font-size: .85em; }
td.waiting { border-left: 6px solid #e0a100; background: #fff8e1; }
.mark { display: inline-block; border-radius: .6em; padding: 0 .45em; margin: .1em .2em 0 0;
        font-size: .8em; border: 1px solid #aab; background: #f4f6f9; }
.mark.snapshot { border-color: #1f7a99; color: #1f5f77; background: #e6f5fa; }
.mark.wait { border-color: #c08a00; color: #7a5800; background: #fff3cd; }
.mark.resume { border-color: #c08a00; color: #7a5800; }
.mark.error { border-color: #b3261e; color: #b3261e; background: #fdecea; }
.mark.decision { border-color: #333; font-weight: 600; }
.mark.current { border-color: #6a3fa0; color: #4b2a75; background: #f1eafa; }
.verdict { font-weight: 700; padding: .15rem .5rem; border-radius: .3rem; }
.correct { background: #e3f4e6; color: #14532d; }
.duplicate, .missing { background: #fde2e1; color: #8c1d18; }
.refused, .lost-race { background: #fff1c2; color: #6b4e00; }
.stuck { background: #efe3f7; color: #5b2a7a; }
.possible { background: #fde2e1; color: #8c1d18; }
.prevented { background: #e3f4e6; color: #14532d; }
.why { border-left: 4px solid #8a99ad; padding: .4rem .9rem; background: #f6f8fa; }
.legend dt { font-weight: 600; } .legend dd { margin: 0 0 .4rem 1.2rem; }
caption { caption-side: bottom; color: #667; font-size: .85em; padding-top: .3rem; }
.table-title { font-weight: 600; margin-bottom: 0; }
"""


def page(title: str, sections: Iterable[str]) -> str:
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def heading(text: str) -> str:
    return f"<h2>{escape(text)}</h2>"


def paragraph(text: str, css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return f"<p{attribute}>{escape(text)}</p>"


def verdict_badge(word: str, detail: str = "") -> str:
    css = word.replace(" ", "-")
    shown = escape(word) + (f" {escape(detail)}" if detail else "")
    return f'<span class="verdict {css}" data-verdict="{escape(word)}">{shown}</span>'


def _mark(css: str, text: str) -> str:
    return f'<span class="mark {css}">{escape(text)}</span>'


def _event_cell(event: Event) -> str:
    parts = []
    if event.kind is Kind.RESUME:
        parts.append(f'<span class="label">{escape(event.label)} resumes</span>')
    elif event.step_number:
        parts.append(f'<span class="label">{escape(event.label)}</span>')
        parts.append(f"<code>{escape(event.sql)}</code>")
    else:
        parts.append(f'<span class="label">{escape(event.sql)}</span>')
    if event.step_number and event.kind is not Kind.WAIT and not event.sqlstate:
        parts.append(f"<div>{escape(rows_text(event.rows))}</div>")
    parts.append("<div>" + "".join(_mark(css, text) for css, text in event_marks(event)) + "</div>")
    return "".join(parts)


def timeline(run: Run, title: str = "") -> str:
    sessions = len(run.sessions)
    blocked = blocked_positions(run)
    head = "".join(f"<th>T{n}</th>" for n in range(1, sessions + 1))
    rows = []
    for position, event in enumerate(run.events, start=1):
        cells = []
        for session in range(1, sessions + 1):
            if session == event.session:
                cells.append(
                    f'<td class="event" data-session="{session}">{_event_cell(event)}</td>'
                )
            elif position in blocked.get(session, ()):
                cells.append(f'<td class="waiting" title="T{session} is blocked"></td>')
            else:
                cells.append("<td></td>")
        rows.append(
            f'<tr class="timeline-event" data-position="{position}">'
            f'<td class="pos">{position}</td>{"".join(cells)}</tr>'
        )
    caption = title or f"{run.strategy} at {run.isolation}, schedule {run.schedule}"
    return (
        f'<table class="timeline" data-strategy="{escape(run.strategy)}">'
        f"<caption>{escape(caption)} (order {run.order_id})</caption>"
        f"<thead><tr><th>#</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def verdict_line(run: Run, detail: str) -> str:
    return f"<p>verdict: {verdict_badge(run.verdict.value)} {escape(detail)}</p>"


def why(text: str) -> str:
    return f'<div class="why"><strong>why</strong><p>{escape(text)}</p></div>'


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    caption: str = "",
    css: str = "",
    title: str = "",
) -> str:
    """A plain table; a cell given as ``("verdict", word, detail)`` is drawn as a verdict."""
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, tuple) and cell and cell[0] == "verdict":
                cells.append(f'<td class="verdict-cell">{verdict_badge(cell[1], cell[2])}</td>')
            else:
                cells.append(f"<td>{escape(str(cell))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    attribute = f' class="{css}"' if css else ""
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    rows_html = "".join(body)
    heading = f'<p class="table-title">{escape(title)}</p>' if title else ""
    return (
        f"{heading}<table{attribute}>{cap}<thead><tr>{head}</tr></thead>"
        f"<tbody>{rows_html}</tbody></table>"
    )


def matrix(runs: Sequence[Run], title: str) -> str:
    header, rows = matrix_grid(runs)
    return table(header, [_verdict_cells(row) for row in rows], MATRIX_CAPTION, "matrix", title)


def compare(results: Sequence[StressResult], title: str) -> str:
    heading, header, rows = compare_grid(results, title)
    return table(header, [_verdict_cells(row) for row in rows], COMPARE_CAPTION, "compare", heading)


def _verdict_cells(row: Sequence[Any]) -> list[Any]:
    return [("verdict", *cell) if isinstance(cell, tuple) else cell for cell in row]


def legend(entries: Sequence[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in entries)
    return f'<dl class="legend">{items}</dl>'


__all__ = [
    "anomalies", "compare", "heading", "legend", "matrix", "page", "paragraph", "table", "timeline",
    "verdict_badge", "verdict_line", "why",
]  # fmt: skip


def anomalies(cells: Sequence[Cell]) -> str:
    """The anomaly table of one server; a possible anomaly is drawn as a duplicate is."""
    from redpacket.report.anomaly_view import ANOMALY_CAPTION, anomaly_grid

    title, header, rows = anomaly_grid(cells)
    coloured = [
        row[:2] + [("verdict", *_anomaly_words(value)) for value in row[2:]] for row in rows
    ]
    return table(header, coloured, ANOMALY_CAPTION, "anomalies", title)


def _anomaly_words(value: str) -> tuple[str, str]:
    word, _, how = value.partition(": ")
    return word, how
