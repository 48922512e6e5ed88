"""Hold the history of a run against the table, the way Jepsen checks a history.

(a) no order has more than one red packet for the campaign;
(b) every request reported ``granted`` has its row;
(c) every row was reported ``granted`` by some request — or belongs to a request
    whose outcome is unknown, which the row then resolves as committed.
Unknown requests that no row explains did not commit. Violations name the
requests involved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redpacket.database.lab import Lab, Schema
from redpacket.strategies.ending import Outcome
from redpacket.stress.history import History, Request

MAX_LISTED = 20
_MAY_HAVE_COMMITTED = (Outcome.GRANTED, Outcome.UNKNOWN)


@dataclass(frozen=True)
class Violation:
    rule: str  # duplicate | granted_without_row | row_without_grant
    order_id: int
    detail: str
    requests: tuple[Request, ...] = ()

    def describe(self) -> str:
        lines = [f"{self.rule}: order {self.order_id}: {self.detail}"]
        lines += [f"    {request.describe()}" for request in self.requests]
        return "\n".join(lines)


@dataclass(frozen=True)
class HistoryCheck:
    requests: int
    unknown: int
    unknown_committed: int
    unknown_not_committed: int
    violations: tuple[Violation, ...] = field(default_factory=tuple)
    violation_count: int = 0

    @property
    def ok(self) -> bool:
        return self.violation_count == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "requests": self.requests,
            "unknown": self.unknown,
            "unknown_committed": self.unknown_committed,
            "unknown_not_committed": self.unknown_not_committed,
            "violations": self.violation_count,
            "examples": [
                {
                    "rule": v.rule,
                    "order_id": v.order_id,
                    "detail": v.detail,
                    "requests": [r.__dict__ for r in v.requests],
                }
                for v in self.violations
            ],
        }


def rows_so_far(lab: Lab, schema: Schema) -> int:
    """The highest red packet id now: rows up to it were there before a run began."""
    with lab.connect(schema) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT coalesce(max(id), 0) FROM red_packets")
        row = cursor.fetchone()
        cursor.close()
    return int(str(row[0])) if row else 0


def check_history(
    lab: Lab, schema: Schema, history: History, campaign_id: str, existing_before: int = 0
) -> HistoryCheck:
    """Check ``history`` against the table; memory stays small for a million requests.

    Rows with ids up to ``existing_before`` were in the table before the run (a run
    on tables it did not reset): they count for (a), but no request of this run
    owes them a report under (c).
    """
    orders = set(history.order)
    with lab.connect(schema) as conn:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT id, order_id FROM red_packets WHERE campaign_id = %s", (campaign_id,)
        )
        rows = cursor.fetchall()
        cursor.close()
    by_order: dict[int, list[int]] = defaultdict(list)
    for packet_id, order_id in rows:
        if int(order_id) in orders:
            by_order[int(order_id)].append(int(packet_id))
    found: list[tuple[str, int, str, Callable[[int], bool]]] = []

    # (a) one red packet per order and campaign: the requests that said they granted it
    for order_id, packets in by_order.items():
        if len(packets) > 1:
            found.append(("duplicate", order_id, f"{len(packets)} red packets {sorted(packets)}",
                          lambda i: history.outcome[i] in _MAY_HAVE_COMMITTED))  # fmt: skip

    # (b) every reported grant has its row
    existing = {packet for packets in by_order.values() for packet in packets}
    reported: set[int] = set()
    for index in history.indexes_with(Outcome.GRANTED):
        packet = history.red_packet[index]
        reported.add(packet)
        if packet not in existing:
            found.append(("granted_without_row", history.order[index],
                          f"red packet {packet} is not in the table",
                          _has_packet(history, packet)))  # fmt: skip

    # (c) every row was reported, or resolves an unknown outcome
    unknown = list(history.indexes_with(Outcome.UNKNOWN))
    unresolved: dict[int, list[int]] = defaultdict(list)
    for index in unknown:
        unresolved[history.order[index]].append(index)
    committed = 0
    for order_id, packets in by_order.items():
        for packet in packets:
            if packet in reported or packet <= existing_before:
                continue
            candidates = unresolved.get(order_id, [])
            match = next((i for i in candidates if history.red_packet[i] == packet), None)
            if match is None:
                match = next((i for i in candidates if history.red_packet[i] < 0), None)
            if match is not None:
                candidates.remove(match)
                committed += 1
                continue
            detail = f"red packet {packet} was never reported granted"
            found.append(("row_without_grant", order_id, detail, _any_request))

    return HistoryCheck(
        requests=len(history),
        unknown=len(unknown),
        unknown_committed=committed,
        unknown_not_committed=len(unknown) - committed,
        violations=_with_requests(history, found[:MAX_LISTED]),
        violation_count=len(found),
    )


def _has_packet(history: History, packet: int) -> Callable[[int], bool]:
    return lambda index: history.red_packet[index] == packet


def _any_request(_index: int) -> bool:
    return True


def _with_requests(
    history: History, found: list[tuple[str, int, str, Callable[[int], bool]]]
) -> tuple[Violation, ...]:
    """Attach the requests involved, in one pass over the history, for the listed few."""
    wanted: dict[int, list[int]] = defaultdict(list)
    for position, (_, order_id, _, _) in enumerate(found):
        wanted[order_id].append(position)
    involved: list[list[int]] = [[] for _ in found]
    for index, order_id in enumerate(history.order):
        for position in wanted.get(order_id, ()):
            if len(involved[position]) < MAX_LISTED and found[position][3](index):
                involved[position].append(index)
    return tuple(
        Violation(rule, order_id, detail, tuple(history.request(i) for i in indexes))
        for (rule, order_id, detail, _), indexes in zip(found, involved, strict=True)
    )
