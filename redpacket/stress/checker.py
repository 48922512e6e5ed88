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
from dataclasses import dataclass, field
from typing import Any

import psycopg

from redpacket.database.lab import CONNECT_TIMEOUT_S
from redpacket.stress.history import GRANTED, UNKNOWN, History, Request

MAX_LISTED = 20


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


def check_history(conninfo: str, history: History, campaign_id: str) -> HistoryCheck:
    orders = sorted(set(history.order))
    with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        rows = conn.execute(
            "SELECT id, order_id FROM red_packets"
            " WHERE campaign_id = %s AND order_id = ANY(%s::bigint[])",
            (campaign_id, orders),
        ).fetchall()
    by_order: dict[int, list[int]] = defaultdict(list)
    for packet_id, order_id in rows:
        by_order[int(order_id)].append(int(packet_id))
    requests_of: dict[int, list[int]] = defaultdict(list)
    for index, order_id in enumerate(history.order):
        requests_of[order_id].append(index)

    violations: list[Violation] = []
    count = 0

    def violate(rule: str, order_id: int, detail: str, indexes: list[int]) -> None:
        nonlocal count
        count += 1
        if len(violations) < MAX_LISTED:
            involved = tuple(history.request(i) for i in indexes[:MAX_LISTED])
            violations.append(Violation(rule, order_id, detail, involved))

    # (a) one red packet per order and campaign
    for order_id, packets in by_order.items():
        if len(packets) > 1:
            granted = [i for i in requests_of[order_id] if history.outcome[i] in (GRANTED, UNKNOWN)]
            violate("duplicate", order_id, f"{len(packets)} red packets {sorted(packets)}", granted)

    # (b) every reported grant has its row
    existing = {packet for packets in by_order.values() for packet in packets}
    reported: set[int] = set()
    for index in history.indexes_with(GRANTED):
        packet = history.red_packet[index]
        reported.add(packet)
        if packet not in existing:
            order_id = history.order[index]
            violate("granted_without_row", order_id, f"red packet {packet} is not in the table",
                    [index])  # fmt: skip

    # (c) every row was reported, or explains an unknown outcome
    unknown = list(history.indexes_with(UNKNOWN))
    unresolved_by_order: dict[int, list[int]] = defaultdict(list)
    for index in unknown:
        unresolved_by_order[history.order[index]].append(index)
    committed = 0
    for order_id, packets in by_order.items():
        for packet in packets:
            if packet in reported:
                continue
            candidates = unresolved_by_order.get(order_id, [])
            match = next((i for i in candidates if history.red_packet[i] == packet), None)
            if match is None:
                match = next((i for i in candidates if history.red_packet[i] < 0), None)
            if match is not None:
                candidates.remove(match)
                committed += 1
                continue
            detail = f"red packet {packet} was never reported granted"
            violate("row_without_grant", order_id, detail, requests_of[order_id])
    return HistoryCheck(
        requests=len(history),
        unknown=len(unknown),
        unknown_committed=committed,
        unknown_not_committed=len(unknown) - committed,
        violations=tuple(violations),
        violation_count=count,
    )
