"""isolationtester's text, byte for byte, from a run's events.

Tables are laid out as libpq's ``PQprint`` lays them out with the options the tester
passes (header, aligned, ``|`` between fields): a column is as wide as its widest
value or its name, in bytes; it is right-aligned when every non-empty value looks
like a number (digits, ``.``, ``E``, ``e``, blanks and ``-`` only, not starting with
an ``E`` and ending with a digit) and left-aligned otherwise; NULL prints empty. A
result without columns prints nothing. Lines the tester sends to stderr (``Problem``)
are kept apart, so a caller can print them where the tester does.
"""

from __future__ import annotations

from collections.abc import Iterable

from redpacket.specs.events import (
    Event,
    Failure,
    Notice,
    Notify,
    PermutationStarted,
    Problem,
    SendFailed,
    SetupResult,
    SpecParsed,
    StepCanceled,
    StepCompleted,
    StepResult,
    StepWaiting,
    Table,
)

_NUMERIC = frozenset("0123456789.Ee -")


def width(text: str) -> int:
    """The width C's printf gives a string: its length in bytes."""
    return len(text.encode("utf-8", "surrogateescape"))


def _looks_numeric(value: str) -> bool:
    return (
        all(ch in _NUMERIC for ch in value)
        and value[0] not in "Ee"
        and value[-1].isascii()
        and value[-1].isdigit()
    )


def table(result: Table) -> str:
    if not result.columns:
        return ""
    widths = [width(name) for name in result.columns]
    numeric = [True] * len(result.columns)
    for row in result.rows:
        for j, value in enumerate(row):
            if value:
                widths[j] = max(widths[j], width(value))
                numeric[j] = numeric[j] and _looks_numeric(value)

    def cell(j: int, value: str) -> str:
        pad = " " * (widths[j] - width(value))
        return pad + value if numeric[j] else value + pad

    lines = ["|".join(cell(j, name) for j, name in enumerate(result.columns))]
    lines.append("+".join("-" * w for w in widths))
    lines.extend(
        "|".join(cell(j, value or "") for j, value in enumerate(row)) for row in result.rows
    )
    count = len(result.rows)
    return "\n".join(lines) + f"\n({count} row{'' if count == 1 else 's'})\n\n"


def failure(result: Failure) -> str:
    if result.severity is None:
        return f"{result.message}\n"
    return f"{result.severity}:  {result.message}\n"


def line(event: Event) -> str:
    """The text isolationtester prints for one event (stdout or stderr)."""
    match event:
        case SpecParsed(sessions=sessions):
            return f"Parsed test spec with {sessions} sessions\n"
        case PermutationStarted(steps=steps):
            return "\nstarting permutation:" + "".join(f" {name}" for name in steps) + "\n"
        case SetupResult(table=result):
            return table(result)
        case StepWaiting(step=step, sql=sql):
            return f"step {step}: {sql} <waiting ...>\n"
        case StepCompleted(step=step, sql=sql, after_wait=after_wait):
            return f"step {step}: <... completed>\n" if after_wait else f"step {step}: {sql}\n"
        case StepResult(result=Table() as result):
            return table(result)
        case StepResult(result=Failure() as result):
            return failure(result)
        case Notice(session=session, text=text):
            return f"{session}: {text}"
        case Notify(session=session, channel=channel, payload=payload, sender=sender):
            return f'{session}: NOTIFY "{channel}" with payload "{payload}" from {sender}\n'
        case SendFailed(step=step, message=message):  # on stdout, as isolationtester has it
            return f"failed to send query for step {step}: {message}\n"
        case StepCanceled(step=step, seconds=seconds):
            return f"isolationtester: canceling step {step} after {seconds} seconds\n"
        case Problem(text=text, newline=newline):
            return text + ("\n" if newline else "")
    raise TypeError(f"not an event: {event!r}")  # pragma: no cover


def text(events: Iterable[Event], *, problems: bool = True) -> str:
    """The whole output, as pg_isolation_regress records it (stderr lines in place)."""
    return "".join(line(event) for event in events if problems or not isinstance(event, Problem))
