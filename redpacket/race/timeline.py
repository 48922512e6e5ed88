"""What a race did, statement by statement, and the timeline text a failing test shows.

The text is ``explain``'s layout in plain characters (pytest prints it in a failure
report, where no colours or box-drawing characters are safe): one row per event,
one column per call, the user's own SQL, and the marks: who waited for whom, when a
waiting statement came back, and the server's error.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any

from redpacket.race.calls import Call

COLUMN = 44


def _value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def with_values(sql: str, params: Any) -> str:
    """The statement as the reader wants it: the driver's placeholders replaced by the
    values sent (for the timeline only; the driver bound them)."""
    if isinstance(params, dict):
        return re.sub(r"%\((\w+)\)s", lambda m: _value(params.get(m.group(1))), sql)
    if isinstance(params, list | tuple) and params:
        if "%s" not in sql:  # from the wire: $1 or ?, bound apart; said beside the SQL
            return f"{sql}  (bound: {', '.join(_bound(v) for v in params)})"
        values = iter(params)
        return re.sub(r"%s", lambda _m: _value(next(values, None)), sql)
    return sql


def _bound(value: Any) -> str:
    return "NULL" if value is None else str(value)


@dataclass(frozen=True)
class RaceEvent:
    position: int
    call: int
    number: int  # the statement's number within its call
    sql: str
    kind: str  # done, wait, resume, error, resume-error
    waited_on: tuple[int, ...] = ()
    error: tuple[str, str] | None = None

    def text(self) -> str:
        flat = " ".join(self.sql.split())
        who = ", ".join(f"T{n}" if n else "a backend outside the race" for n in self.waited_on)
        marks = {
            "wait": f"  [waits for {who}]",
            "resume": f"  [resumes: {who} let it go]",
            "error": "", "resume-error": f"  [resumes: {who} let it go]",
        }.get(self.kind, "")  # fmt: skip
        if self.kind == "resume" or self.kind == "resume-error":
            flat = f"(#{self.number} returns)"
        else:
            flat = f"#{self.number} {flat}"
        if self.error is not None and self.error[0].startswith("cut-"):  # a fault, not the server
            marks += f"  [{self.error[0]}: {self.error[1]}]"
        elif self.error is not None:
            marks += f"  [error {self.error[0]}: {self.error[1]}]"
        return flat + marks


@dataclass(frozen=True)
class RaceResult:
    events: tuple[RaceEvent, ...]
    calls: tuple[Call, ...]
    engine: str

    @property
    def results(self) -> list[Any]:
        """Each call's return value, or the exception it raised."""
        return [
            call.exception if call.exception is not None else call.result for call in self.calls
        ]

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.calls)

    @property
    def timeline(self) -> str:
        return render(self.events, len(self.calls), self.engine)

    def __str__(self) -> str:
        return self.timeline


def render(events: tuple[RaceEvent, ...], calls: int, engine: str) -> str:
    header = "  #  " + " | ".join(f"T{n}".ljust(COLUMN) for n in range(1, calls + 1))
    lines = [f"timeline on {engine}:", header.rstrip(), "-" * len(header.rstrip())]
    for event in events:
        wrapped = textwrap.wrap(event.text(), COLUMN) or [""]
        for i, part in enumerate(wrapped):
            cells = [part if n == event.call else "" for n in range(1, calls + 1)]
            number = f"{event.position:>3}" if i == 0 else "   "
            lines.append((f"{number}  " + " | ".join(c.ljust(COLUMN) for c in cells)).rstrip())
    return "\n".join(lines)
