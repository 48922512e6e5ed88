"""A stress run's figures: for people (a table row) and for machines (JSON, CSV)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redpacket.stress.check import GrantCheck
from redpacket.stress.plan import StressPlan
from redpacket.stress.tally import Tally


@dataclass(frozen=True)
class StressResult:
    plan: StressPlan
    tally: Tally
    check: GrantCheck
    elapsed_s: float
    interrupted: bool = False

    @property
    def throughput_per_s(self) -> float:
        return self.tally.attempts / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def correct(self) -> bool:
        return self.check.correct

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
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
            "failed": dict(sorted(self.tally.failed.items())),
            "retries": self.tally.retries,
            "duplicate_orders": self.check.duplicate_orders,
            "extra_grants": self.check.extra_grants,
            "missing_orders": self.check.missing_orders,
            "correct": self.correct,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": round(self.throughput_per_s, 1),
            "latency_ms": self.tally.latency.summary_ms(),
            "interrupted": self.interrupted,
        }


CSV_FIELDS = [
    "strategy", "isolation", "workload", "workers", "processes", "orders", "retries_allowed",
    "engine", "attempts", "granted", "already_granted", "failed", "retries",
    "duplicate_orders", "extra_grants", "missing_orders", "correct", "elapsed_s",
    "throughput_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "interrupted",
]  # fmt: skip


def append_csv(path: Path, result: StressResult) -> None:
    """Append one row per run; write the header when the file is new."""
    data = result.to_json()
    latency = data.pop("latency_ms")
    data["failed"] = ";".join(f"{k}={v}" for k, v in data["failed"].items())
    row = data | {f"{key}_ms": value for key, value in latency.items()}
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
