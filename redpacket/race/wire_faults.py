"""Faults the proxy puts in a participant's way, where real networks put them.

- ``cut-after-commit:T1``: the server commits T1's transaction, and the proxy cuts T1's
  connection before T1 hears so. The client knows only that its COMMIT went out and no
  answer came: does it retry, and grant twice?
- ``cut-before-commit:T1``: the proxy cuts T1's connection as its COMMIT is sent, before
  the server receives it; the server rolls the transaction back when the connection
  ends. To the client the two cuts look the same.
- ``latency:MS``: every round trip of every participant waits MS milliseconds before it
  goes to the server.

A commit is the step that ends a transaction with its writes kept: an explicit COMMIT
(or END), or a statement on a table outside a transaction block, which the server
commits on its own. Each cut happens once per attempt, at the participant's first
commit, so a client that reconnects and retries is seen doing it. What the server did
with the cut commit is said from what the proxy saw (its answer to the COMMIT, or that
it never received one), since the client could not know: "unknown", as the stress
history checker says of a COMMIT whose answer was lost.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from redpacket.errors import LabError
from redpacket.wire.link import Answer, Link, Request

CUT_AFTER: Final = "cut-after-commit"
CUT_BEFORE: Final = "cut-before-commit"
LATENCY: Final = "latency"
KINDS: Final = (CUT_AFTER, CUT_BEFORE, LATENCY)
_COMMIT = re.compile(r"^\s*(commit|end)(\s+(work|transaction))?\s*;?\s*$", re.I)
_ROLLBACK = re.compile(r"^\s*rollback\b", re.I)


@dataclass(frozen=True)
class Fault:
    kind: str
    participant: int = 0  # 1 for T1; 0: every participant (latency)
    ms: float = 0.0

    @property
    def name(self) -> str:
        target = f"{self.ms:g}" if self.kind == LATENCY else f"T{self.participant}"
        return f"{self.kind}:{target}"


def parse_fault(text: str, participants: int) -> Fault:
    """``cut-after-commit:T1``, ``cut-before-commit:T2``, ``latency:20``."""
    kind, _, target = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS or not target:
        raise LabError(
            f"--fault {text!r}: give cut-after-commit:T1, cut-before-commit:T1 or latency:MS"
        )
    if kind == LATENCY:
        try:
            ms = float(target)
        except ValueError:
            ms = -1.0
        if not 0 <= ms <= 60_000:
            raise LabError(f"--fault {text!r}: latency is milliseconds, 0 to 60000")
        return Fault(kind, 0, ms)
    found = re.fullmatch(r"[Tt](\d+)", target.strip())
    if found is None or not 1 <= int(found.group(1)) <= participants:
        raise LabError(f"--fault {text!r}: name a participant, T1 to T{participants}")
    return Fault(kind, int(found.group(1)))


def will_commit(statements: tuple[str, ...], in_transaction: bool, autocommit: bool) -> bool:
    """Whether the round trip carrying ``statements`` is about to commit: an explicit
    COMMIT, or a statement outside a transaction block while the session autocommits
    (MySQL's autocommit=0 opens a transaction instead)."""
    cleaned = [s for s in statements if s.strip()]
    if not cleaned:
        return False
    if any(_COMMIT.match(s) for s in cleaned):
        return True
    lone = not in_transaction and autocommit
    return lone and not any(_ROLLBACK.match(s) for s in cleaned)


def committed(statements: tuple[str, ...], error: object, in_transaction: bool) -> bool:
    """Whether the round trip that got this answer committed: it ended the transaction
    (the server's own status after it), without an error, and was no ROLLBACK."""
    cleaned = [s for s in statements if s.strip()]
    if error is not None or in_transaction or not cleaned:
        return False
    return not any(_ROLLBACK.match(s) for s in cleaned)


@dataclass(frozen=True)
class Cut:
    """A cut the proxy made: whom, at which step, and what the server did."""

    fault: str
    participant: int
    step: int
    sql: str
    server: str  # "committed", "rolled back (never received)", "refused 40001: ..."

    @property
    def error(self) -> tuple[str, str]:
        """The mark the step gets in the timeline: the fault's, not the server's."""
        said = {CUT_AFTER: "the server committed; the proxy cut the connection before the"
                " client heard", CUT_BEFORE: "the proxy cut the connection before the server"
                " received this"}  # fmt: skip
        return self.fault, said[self.fault]

    def text(self) -> str:
        return (
            f"T{self.participant}'s step {self.step} ({' '.join(self.sql.split())[:60]}):"
            f" {self.fault} — on the server it {self.server}; the client was not told"
            " (an unknown outcome, to the client)"
        )


class Injector:
    """The faults of one attempt, applied to participants' round trips by whoever assigns
    the participants (a schedule's ``WireCalls``, a hammer's gate)."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        self.faults = list(faults)
        self.latency_s = sum(f.ms for f in faults if f.kind == LATENCY) / 1000
        self.cuts: list[Cut] = []
        self.cut_participants: list[int] = []  # whose connection was cut: a new one is theirs
        self._fired: set[str] = set()  # a cut happens once an attempt
        self._lock = threading.Lock()

    def _armed(self, kind: str, participant: int) -> Fault | None:
        for fault in self.faults:
            if fault.kind == kind and fault.participant == participant:
                return None if fault.name in self._fired else fault
        return None

    def before(self, participant: int, step: int, link: Link, request: Request) -> Cut | None:
        """As the step goes to the server: the latency, and a cut before a commit."""
        if self.latency_s:
            time.sleep(self.latency_s)  # the fault asked for: a slow network, per round trip
        fault = self._armed(CUT_BEFORE, participant)
        if fault and will_commit(request.statements, link.in_transaction, link.autocommit):
            return self._cut(fault, participant, step, link, request,
                             "rolled back (the COMMIT never reached it)")  # fmt: skip
        return None

    def after(
        self, participant: int, step: int, link: Link, request: Request, answer: Answer
    ) -> Cut | None:
        """As the answer comes back, before the client hears it: a cut after a commit."""
        fault = self._armed(CUT_AFTER, participant)
        if fault and committed(request.statements, answer.error, answer.in_transaction):
            return self._cut(fault, participant, step, link, request, "committed")
        return None

    def _cut(
        self, fault: Fault, participant: int, step: int, link: Link, request: Request,
        server: str,
    ) -> Cut:  # fmt: skip
        """Cut ``link``, both sides: the server ends the session, the client hears EOF."""
        cut = Cut(fault.kind, participant, step, request.sql, server)
        with self._lock:
            self._fired.add(fault.name)
            self.cuts.append(cut)
            self.cut_participants.append(participant)
        link.close()
        return cut

    def reconnected(self) -> int | None:
        """A connection no participant owns sent a step: the cut participant's, if any."""
        with self._lock:
            return self.cut_participants.pop(0) if self.cut_participants else None
