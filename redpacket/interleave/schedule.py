"""Which session runs how far, in which order.

A schedule is a list of entries ``Ti:X``: "let session i run up to and including
action X", where X is ``begin``, a step number (1-based, as the strategy lists its
steps), ``commit`` (the transaction's end: COMMIT, or ROLLBACK after an error) or
``end`` (``*``). A session that blocks on a lock stays where it is while the
schedule moves on; when the lock is released it resumes up to its target, and its
completion is recorded where it happened. After the last entry every session runs
to its end, so a short schedule still finishes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from redpacket.errors import LabError

BEGIN = 0
END = math.inf


@dataclass(frozen=True)
class Entry:
    session: int  # 1-based
    target: float  # BEGIN, a step number, commit (steps + 1) or END

    def __str__(self) -> str:
        if self.target == END:
            return f"T{self.session}:end"
        if self.target == BEGIN:
            return f"T{self.session}:begin"
        return f"T{self.session}:{int(self.target)}"


@dataclass(frozen=True)
class Schedule:
    name: str
    entries: tuple[Entry, ...]
    description: str = ""

    @property
    def sessions(self) -> int:
        return max(entry.session for entry in self.entries)


def _parse_entries(text: str) -> list[tuple[int, float | str]]:
    """(session, target) pairs; a ``commit`` target waits for the strategy's length."""
    entries: list[tuple[int, float | str]] = []
    for raw in text.split(","):
        item = raw.strip()
        match = re.fullmatch(r"[Tt](\d+)(?::(\w+|\*))?", item)
        if not match:
            raise LabError(
                f"bad schedule entry {item!r}; write entries like T1:1,T2:begin,T1:commit,T2:end"
            )
        session = int(match.group(1))
        if session < 1:
            raise LabError(f"bad schedule entry {item!r}: sessions are numbered from T1")
        target_text = (match.group(2) or "end").lower()
        target: float | str
        if target_text in ("end", "*"):
            target = END
        elif target_text == "begin":
            target = BEGIN
        elif target_text == "commit":
            target = "commit"
        elif target_text.isdigit() and int(target_text) >= 1:
            target = int(target_text)
        else:
            raise LabError(
                f"bad schedule entry {item!r}: after ':' give a step number, begin, commit or end"
            )
        entries.append((session, target))
    return entries


NAMED: dict[str, tuple[str, str]] = {
    "serial": ("T1:end,T2:end", "T1 runs whole, then T2"),
    "t2-first-read": (
        "T1:1,T2:1,T1:end,T2:end",
        "both run their first step, then T1 runs to commit, then T2 finishes (the seed's bug)",
    ),
    "t1-first-read": (
        "T1:1,T2:end,T1:end",
        "T1 runs its first step, then T2 runs whole, then T1 finishes",
    ),
    "t2-waits": (
        "T1:2,T2:end,T1:end",
        "T1 runs two steps, T2 runs until it ends or blocks on T1, then T1 finishes"
        " (where T1's steps take a lock, T2 waits for it: the bug as production met it)",
    ),
    "t2-begins-first": (
        "T2:begin,T1:end,T2:end",
        "T2 sends BEGIN before T1's first statement, then T1 runs whole, then T2",
    ),
}
SCHEDULE_NAMES = tuple(NAMED)


def looks_explicit(text: str) -> bool:
    """``T1:1,T2:end`` is an entry list; ``t2-first-read`` is a name."""
    return re.match(r"\s*[Tt]\d+\s*(:|,|$)", text) is not None


def parse_schedule(text: str, steps: int) -> Schedule:
    """A named schedule or an explicit entry list, checked against a strategy of ``steps`` steps."""
    name = text.strip()
    spec, description = NAMED.get(name.lower(), (name, "explicit schedule"))
    if not spec:
        raise LabError(f"empty schedule; name one of: {', '.join(SCHEDULE_NAMES)}")
    if name.lower() not in NAMED and not looks_explicit(spec):
        raise LabError(
            f"unknown schedule {text!r}; name one of: {', '.join(SCHEDULE_NAMES)},"
            " or give entries like T1:1,T2:1,T1:end,T2:end"
        )
    named = name.lower() in NAMED
    resolved = []
    for session, target in _parse_entries(spec):
        if isinstance(target, str):  # "commit"
            target = steps + 1
        elif target != END and target > steps and named:
            target = steps  # a named schedule fits every strategy: T1:2 is T1's last of one
        elif target != END and target > steps:
            raise LabError(
                f"schedule entry T{session}:{int(target)} names a step the strategy"
                f" does not have (it has steps 1-{steps}, then commit)"
            )
        resolved.append(Entry(session, target))
    entries = tuple(resolved)
    sessions = max(entry.session for entry in entries)
    missing = set(range(1, sessions + 1)) - {entry.session for entry in entries}
    if missing:
        listed = ", ".join(f"T{n}" for n in sorted(missing))
        raise LabError(f"schedule never runs {listed}; sessions must be numbered T1..T{sessions}")
    return Schedule(name.lower() if named else spec, entries, description)
