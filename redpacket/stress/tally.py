"""What workers counted: mergeable across workers and processes, small whatever the run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from redpacket.strategies.ending import NO_SQLSTATE, Outcome
from redpacket.stress.histogram import Histogram
from redpacket.stress.history import History

# Outcomes as module constants: read once, not looked up on the enum for every request
GRANTED: Final = Outcome.GRANTED
ALREADY_GRANTED: Final = Outcome.ALREADY_GRANTED
FAILED: Final = Outcome.FAILED
UNKNOWN: Final = Outcome.UNKNOWN
INTERRUPTED: Final = Outcome.INTERRUPTED


@dataclass
class Tally:
    attempts: int = 0  # grant requests finished (each may take several transactions)
    granted: int = 0
    already_granted: int = 0
    unknown: int = 0  # connection lost while COMMIT was in flight
    interrupted: int = 0  # cut short by the end of the run (Ctrl-C); certainly not committed
    failed: Counter[str] = field(default_factory=Counter)  # by SQLSTATE or reason
    retries: int = 0  # transactions beyond the first, summed over requests
    errors: Counter[str] = field(default_factory=Counter)  # every SQLSTATE any statement met
    client_cpu_s: float = 0.0  # this side's CPU while the workers ran (every process, summed)
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
        self.interrupted += other.interrupted
        self.failed.update(other.failed)
        self.retries += other.retries
        self.errors.update(other.errors)
        self.client_cpu_s += other.client_cpu_s
        self.connections_lost += other.connections_lost
        self.reconnects += other.reconnects
        self.latency.merge(other.latency)
        self.history.merge(other.history, worker_offset)
        self.granted_orders.extend(other.granted_orders)

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
        attempted: bytearray,
    ) -> None:
        """Count one order's request and keep it in the history.

        ``attempted`` marks the orders some request finished for with a known outcome; an
        order whose only request was cut short, or ended unknown (its COMMIT in flight when
        the connection went), is not "left without a grant": nobody learned the answer.
        """
        if outcome is INTERRUPTED:
            self.interrupted += 1
        else:
            self.attempts += 1
            if outcome is not UNKNOWN:
                attempted[order_id] = 1
            if outcome is GRANTED:
                self.granted += 1
                self.granted_orders.append(order_id)
            elif outcome is ALREADY_GRANTED:
                self.already_granted += 1
            elif outcome is FAILED:
                self.failed[reason or NO_SQLSTATE] += 1
            else:
                self.unknown += 1
        if outcome is not GRANTED and outcome is not UNKNOWN:
            red_packet_id = None
        self.history.record(
            worker, order_id, start_ns, end_ns, outcome, reason, attempts, red_packet_id
        )

    def drain_granted_orders(self) -> list[int]:
        drained, self.granted_orders = self.granted_orders, []
        return drained
