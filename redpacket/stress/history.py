"""Every grant request of a run, as the caller saw it — kept in columns, not objects.

A million requests cost about 34 MB here instead of hundreds: one typed array per
field. An outcome is what the worker would have told its caller: granted, already
granted, failed (with a SQLSTATE or reason), unknown — the connection was lost
while COMMIT was in flight, so nobody can know whether it committed (Jepsen's
"info" operations; the checker resolves those against the table) — or interrupted:
the run was stopped before the request ended, and it did not commit.
"""

from __future__ import annotations

import json
import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from redpacket.strategies.ending import Outcome

NO_ID: Final = -1


@dataclass(frozen=True)
class Request:
    worker: int
    order_id: int
    start_ns: int
    end_ns: int
    outcome: str
    reason: str | None
    attempts: int
    red_packet_id: int | None

    def describe(self) -> str:
        span = f"{self.start_ns / 1e6:.3f}..{self.end_ns / 1e6:.3f} ms"
        reason = f" ({self.reason})" if self.reason else ""
        packet = f", red packet {self.red_packet_id}" if self.red_packet_id is not None else ""
        return (
            f"worker {self.worker} order {self.order_id}: {self.outcome}{reason},"
            f" {self.attempts} attempt(s), {span}{packet}"
        )


_CODES: Final = "HIqqBHHq"  # worker, order, start, end, outcome, reason, attempts, red packet
_FIELDS: Final = len(_CODES)
_FLUSH_AT: Final = 8 * 1024  # pending values (1,024 requests) moved to the columns at once


class History:
    """The columns, and the requests recorded since they were last filled.

    ``record`` runs once per request in the loop engine's hot path, and an array's
    ``append`` parses its argument the slow way (about a thousand instructions for
    eight of them); a flat list of pending values, packed into the columns by
    ``struct`` a thousand requests at a time, costs a tenth of that. Every column is
    read through a property that moves the pending values in first, so no reader
    can see a history without its latest requests.
    """

    def __init__(self) -> None:
        self._columns: list[array[int]] = [array(code) for code in _CODES]
        self._pending: list[int] = []
        self.reasons: list[str] = [""]  # index 0: no reason

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        count = len(pending) // _FIELDS
        for index, column in enumerate(self._columns):
            column.frombytes(struct.pack(f"={count}{_CODES[index]}", *pending[index::_FIELDS]))
        self._pending = []

    def _column(self, index: int) -> array[int]:
        if self._pending:
            self.flush()
        return self._columns[index]

    @property
    def worker(self) -> array[int]:
        return self._column(0)

    @property
    def order(self) -> array[int]:
        return self._column(1)

    @property
    def start_ns(self) -> array[int]:
        return self._column(2)

    @property
    def end_ns(self) -> array[int]:
        return self._column(3)

    @property
    def outcome(self) -> array[int]:
        return self._column(4)

    @property
    def reason(self) -> array[int]:
        return self._column(5)

    @property
    def attempts(self) -> array[int]:
        return self._column(6)

    @property
    def red_packet(self) -> array[int]:
        return self._column(7)

    def __len__(self) -> int:
        return len(self._columns[1]) + len(self._pending) // _FIELDS

    def _reason_code(self, reason: str | None) -> int:
        if not reason:
            return 0
        try:
            return self.reasons.index(reason)
        except ValueError:
            self.reasons.append(reason)
            return len(self.reasons) - 1

    def record(
        self,
        worker: int,
        order_id: int,
        start_ns: int,
        end_ns: int,
        outcome: Outcome,
        reason: str | None,
        attempts: int,
        red_packet_id: int | None,
    ) -> None:
        pending = self._pending
        pending.append(worker)
        pending.append(order_id)
        pending.append(start_ns)
        pending.append(end_ns)
        pending.append(outcome)
        pending.append(self._reason_code(reason) if reason else 0)
        pending.append(min(attempts, 65535))
        pending.append(NO_ID if red_packet_id is None else red_packet_id)
        if len(pending) >= _FLUSH_AT:
            self.flush()

    def merge(self, other: History, worker_offset: int = 0) -> None:
        codes = [self._reason_code(reason) for reason in other.reasons]
        self.worker.extend(array("H", (w + worker_offset for w in other.worker)))
        self.order.extend(other.order)
        self.start_ns.extend(other.start_ns)
        self.end_ns.extend(other.end_ns)
        self.outcome.extend(other.outcome)
        self.reason.extend(array("H", (codes[r] for r in other.reason)))
        self.attempts.extend(other.attempts)
        self.red_packet.extend(other.red_packet)

    def request(self, index: int) -> Request:
        red_packet = self.red_packet[index]
        return Request(
            worker=self.worker[index],
            order_id=self.order[index],
            start_ns=self.start_ns[index],
            end_ns=self.end_ns[index],
            outcome=Outcome(self.outcome[index]).label,
            reason=self.reasons[self.reason[index]] or None,
            attempts=self.attempts[index],
            red_packet_id=None if red_packet == NO_ID else red_packet,
        )

    def indexes_with(self, outcome: Outcome) -> Iterator[int]:
        return (i for i, value in enumerate(self.outcome) if value == outcome)


def write_history(history: History, path: Path) -> int:
    """Every request as one JSON object per line, for checking or plotting elsewhere.

    Written one line at a time straight from the columns (the same fields as
    ``Request``), so a million requests never exist as a million objects at once.
    Returns the number of lines written.
    """
    encode = json.JSONEncoder().encode
    reasons = [reason or None for reason in history.reasons]
    labels = [outcome.label for outcome in Outcome]
    columns = zip(
        history.worker, history.order, history.start_ns, history.end_ns, history.outcome,
        history.reason, history.attempts, history.red_packet, strict=True,
    )  # fmt: skip
    with path.open("w") as out:
        for worker, order, start, end, outcome, reason, attempts, packet in columns:
            line = {
                "worker": worker,
                "order_id": order,
                "start_ns": start,
                "end_ns": end,
                "outcome": labels[outcome],
                "reason": reasons[reason],
                "attempts": attempts,
                "red_packet_id": None if packet == NO_ID else packet,
            }
            out.write(encode(line))
            out.write("\n")
    return len(history)
