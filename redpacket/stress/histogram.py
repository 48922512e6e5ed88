"""A latency histogram of fixed size: log-spaced buckets, about 2 % wide.

A run of a million attempts must not keep a million floats; percentiles read from
these buckets are within one bucket width of the exact value, plenty for p50/p99.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Final

GROWTH: Final = 1.02
_LOG_GROWTH: Final = math.log(GROWTH)
MIN_NS: Final = 1_000  # 1 µs: anything faster lands in bucket 0
BUCKETS: Final = int(math.log(600e9 / MIN_NS) / _LOG_GROWTH) + 2  # up to 10 minutes


def _bucket(ns: int) -> int:
    if ns <= MIN_NS:
        return 0
    return min(BUCKETS - 1, int(math.log(ns / MIN_NS) / _LOG_GROWTH) + 1)


def _upper_ns(bucket: int) -> float:
    return MIN_NS * GROWTH**bucket


@dataclass
class Histogram:
    counts: array[int] = field(default_factory=lambda: array("Q", bytes(8 * BUCKETS)))
    total: int = 0
    max_ns: int = 0

    def record(self, ns: int) -> None:
        self.counts[_bucket(ns)] += 1
        self.total += 1
        if ns > self.max_ns:
            self.max_ns = ns

    def merge(self, other: Histogram) -> None:
        for index, count in enumerate(other.counts):
            if count:
                self.counts[index] += count
        self.total += other.total
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile_ms(self, fraction: float) -> float:
        """The latency (ms) under which ``fraction`` of the samples fall (bucket upper bound)."""
        if not self.total:
            return 0.0
        rank = math.ceil(fraction * self.total)
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(_upper_ns(index), self.max_ns) / 1e6
        return self.max_ns / 1e6

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50": round(self.percentile_ms(0.50), 3),
            "p95": round(self.percentile_ms(0.95), 3),
            "p99": round(self.percentile_ms(0.99), 3),
            "max": round(self.max_ns / 1e6, 3),
        }
