"""A stress run's figures: for people (a table row) and for machines (JSON, CSV)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redpacket import vocabulary
from redpacket.engines import engine_named
from redpacket.stress.check import GrantCheck
from redpacket.stress.checker import HistoryCheck
from redpacket.stress.plan import StressPlan
from redpacket.stress.tally import Tally


@dataclass(frozen=True)
class StressResult:
    plan: StressPlan
    tally: Tally
    check: GrantCheck | None  # None when the server was gone before it could be checked
    elapsed_s: float
    interrupted: bool = False
    history_check: HistoryCheck | None = None
    backends_killed: int = 0
    error: str | None = None
    database: str = "postgresql"  # the engine it ran on: which codes count as which fault

    @property
    def throughput_per_s(self) -> float:
        """Requests finished per second, whatever each ended with: what the server kept up
        with. Most requests of a run on granted orders end "already granted"."""
        return self.tally.attempts / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def grants_per_s(self) -> float:
        """Red packets granted per second: the requests that inserted one."""
        return self.tally.granted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def client_cpu_us_per_request(self) -> float:
        """This side's CPU per finished request: what the harness costs the machine it shares."""
        return 1e6 * self.tally.client_cpu_s / self.tally.attempts if self.tally.attempts else 0.0

    @property
    def correct(self) -> bool:
        history_ok = self.history_check is None or self.history_check.ok
        return self.check is not None and self.check.correct and history_ok

    @property
    def verdict(self) -> str:
        """What the run did to the data, in the lab's one vocabulary (refusals do no harm)."""
        check = self.check
        if check is None:
            return "unchecked"
        if check.duplicate_orders:
            return vocabulary.DUPLICATE
        if check.missing_orders:
            return vocabulary.MISSING
        return vocabulary.CORRECT

    @property
    def faults(self) -> dict[str, int]:
        errors = self.tally.errors
        codes = engine_named(self.database).faults
        return {
            "backends_killed": self.backends_killed,
            "connections_lost": self.tally.connections_lost,
            "reconnects": self.tally.reconnects,
            "unknown_outcomes": self.tally.unknown,
            "lock_timeouts": sum(errors[code] for code in codes.lock_timeout),
            "statement_timeouts": sum(errors[code] for code in codes.statement_timeout),
            "deadlocks": sum(errors[code] for code in codes.deadlock),
            "serialization_failures": sum(errors[code] for code in codes.serialization),
        }

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        check = self.check
        return {
            "strategy": plan.strategy.name,
            "isolation": plan.isolation.value,
            "workload": plan.workload.value,
            "workers": plan.workers,
            "processes": plan.processes,
            "orders": plan.orders,
            "retries_allowed": plan.retries,
            "engine": plan.engine.value,
            "attempts": self.tally.attempts,
            "granted": self.tally.granted,
            "already_granted": self.tally.already_granted,
            "unknown": self.tally.unknown,
            "interrupted_requests": self.tally.interrupted,
            "failed": dict(sorted(self.tally.failed.items())),
            "retries": self.tally.retries,
            "duplicate_orders": check.duplicate_orders if check else None,
            "extra_grants": check.extra_grants if check else None,
            "missing_orders": check.missing_orders if check else None,
            "verdict": self.verdict,
            "correct": self.correct,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": round(self.throughput_per_s, 1),  # requests, as the CSV's
            "grants_per_s": round(self.grants_per_s, 1),
            "client_cpu_us_per_request": round(self.client_cpu_us_per_request, 1),
            "latency_ms": self.tally.latency.summary_ms(),
            "faults": self.faults,
            "history": self.history_check.to_json() if self.history_check else None,
            "interrupted": self.interrupted,
            "error": self.error,
        }


CSV_FIELDS = [
    "strategy", "isolation", "workload", "workers", "processes", "orders", "retries_allowed",
    "engine", "attempts", "granted", "already_granted", "unknown", "interrupted_requests", "failed",
    "retries",
    "duplicate_orders", "extra_grants", "missing_orders", "verdict", "correct", "elapsed_s",
    "throughput_per_s", "grants_per_s", "client_cpu_us_per_request", "p50_ms", "p95_ms",
    "p99_ms", "max_ms",
    "history_ok", "interrupted",
    "error",
]  # fmt: skip


def append_csv(path: Path, result: StressResult) -> None:
    """Append one row per run; write the header when the file is new."""
    data = result.to_json()
    latency = data.pop("latency_ms")
    history = data.pop("history")
    data.pop("faults")
    data["failed"] = ";".join(f"{k}={v}" for k, v in data["failed"].items())
    data["history_ok"] = history["ok"] if history else None
    row = data | {f"{key}_ms": value for key, value in latency.items()}
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
