"""What workers counted: mergeable across workers and processes, small whatever the run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from redpacket.stress.histogram import Histogram


@dataclass
class Tally:
    attempts: int = 0  # grant requests finished (each may take several transactions)
    granted: int = 0
    already_granted: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by SQLSTATE or reason
    retries: int = 0  # transactions beyond the first, summed over requests
    latency: Histogram = field(default_factory=Histogram)
    granted_orders: list[int] = field(default_factory=list)  # drained by progress reports

    def merge(self, other: Tally) -> None:
        self.attempts += other.attempts
        self.granted += other.granted
        self.already_granted += other.already_granted
        self.failed.update(other.failed)
        self.retries += other.retries
        self.latency.merge(other.latency)
        self.granted_orders.extend(other.granted_orders)

    def drain_granted_orders(self) -> list[int]:
        drained, self.granted_orders = self.granted_orders, []
        return drained
