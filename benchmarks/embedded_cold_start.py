"""Cold start of the embedded server: from nothing to an answered query, then stop.

Usage: python benchmarks/embedded_cold_start.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import time

from redpacket.database.backends import open_server
from redpacket.database.connect import connect


def one_round() -> tuple[float, float]:
    started = time.perf_counter()
    with open_server("embedded") as server:
        with connect(server.url) as conn:
            conn.execute("SELECT 1")
        ready = time.perf_counter() - started
    return ready, time.perf_counter() - started


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    results = [one_round() for _ in range(rounds)]
    ready = [r for r, _ in results]
    total = [t for _, t in results]
    print(f"rounds: {rounds}")
    print(
        f"start to first query: median {statistics.median(ready):.3f} s"
        f" (min {min(ready):.3f}, max {max(ready):.3f})"
    )
    print(f"start, query and stop: median {statistics.median(total):.3f} s")


if __name__ == "__main__":
    main()
