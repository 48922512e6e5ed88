"""What the spec runner needs from an engine's connections: send, poll, collect.

isolationtester drives each session without blocking: it sends a step, waits a
few milliseconds for the reply, and when none came asks the server whether the
session is waiting for a lock held by another session of the spec. Each engine
module provides a ``SpecServer`` that opens ``SpecSession``s and answers that
question from the server's own lock tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from redpacket.specs.events import Result


class WireError(Exception):
    """The client library could not send or read (a session the server ended); the text
    is the library's own message."""


@dataclass(frozen=True)
class Notification:
    channel: str
    payload: str
    sender_pid: int


class SpecSession(Protocol):
    """One connection, driven one step at a time."""

    pid: int

    def send(self, sql: str) -> None: ...

    def busy(self) -> bool:
        """True until the step's first result has arrived (libpq's PQisBusy)."""
        ...

    def readable(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: as long as it takes) for the server."""
        ...

    def consume(self) -> None:
        """Read what arrived (notices are handed to the session's callback)."""
        ...

    def results(self) -> Iterator[Result]:
        """The step's results in order; may block for statements after the first."""
        ...

    def notifications(self) -> list[Notification]: ...

    def execute(self, sql: str) -> Result | None:
        """Run a setup or teardown block to the end: its last result (None: no rows)."""
        ...

    def last_error(self) -> str:
        """The client's full text of the last error (libpq's PQerrorMessage)."""
        ...

    def changed(self) -> tuple[int, int]:
        """(rows the step's last command changed, the id it inserted or 0): what a write
        without RETURNING tells, read as a red-packet strategy reads it."""
        ...

    def lost(self) -> bool:
        """Whether the server ended the session (a new one is needed to go on)."""
        ...

    def cancel(self) -> bool: ...

    def close(self) -> None: ...


class SpecServer(Protocol):
    """Opens the sessions of a spec run and sees their waits from the server."""

    control: SpecSession  # setup and teardown blocks run here
    has_notices: bool  # whether sessions can send notices (a "notices N" blocker needs them)

    def version(self) -> str:
        """The server's version string, as it reports it."""
        ...

    def open(self, name: str, on_notice: Callable[[str], None] | None) -> SpecSession: ...

    def watch(self, sessions: Sequence[SpecSession]) -> None:
        """From now on, waits count only when the holder is one of ``sessions``."""
        ...

    def is_blocked(self, session: SpecSession) -> bool: ...

    def close(self) -> None: ...
