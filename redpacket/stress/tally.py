"""What workers counted: mergeable across workers and processes, small whatever the run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from redpacket.stress.histogram import Histogram
from redpacket.stress.history import History


@dataclass
class Tally:
    attempts: int = 0  # grant requests finished (each may take several transactions)
    granted: int = 0
    already_granted: int = 0
    unknown: int = 0  # connection lost while COMMIT was in flight
    failed: Counter[str] = field(default_factory=Counter)  # by SQLSTATE or reason
    retries: int = 0  # transactions beyond the first, summed over requests
    errors: Counter[str] = field(default_factory=Counter)  # every SQLSTATE any statement met
    connections_lost: int = 0
    reconnects: int = 0
    latency: Histogram = field(default_factory=Histogram)
    history: History = field(default_factory=History)
    granted_orders: list[int] = field(default_factory=list)  # drained by progress reports

    def merge(self, other: Tally, worker_offset: int = 0) -> None:
        self.attempts += other.attempts
        self.granted += other.granted
        self.already_granted += other.already_granted
        self.unknown += other.unknown
        self.failed.update(other.failed)
        self.retries += other.retries
        self.errors.update(other.errors)
        self.connections_lost += other.connections_lost
        self.reconnects += other.reconnects
        self.latency.merge(other.latency)
        self.history.merge(other.history, worker_offset)
        self.granted_orders.extend(other.granted_orders)

    def drain_granted_orders(self) -> list[int]:
        drained, self.granted_orders = self.granted_orders, []
        return drained
