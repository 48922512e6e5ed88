"""How long the full isolation matrix takes: every strategy x level x named schedule (9 x 3 x 5).

Usage: python benchmarks/matrix_time.py [ROUNDS] [--retries N]
Uses REDPACKET_DATABASE_URL when set, else the lab's default backend. Goal: < 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from redpacket.database import migrate
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab
from redpacket.interleave.matrix import cells, run_matrix
from redpacket.interleave.schedule import SCHEDULE_NAMES
from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy
from redpacket.strategies import STRATEGIES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rounds", type=int, nargs="?", default=5)
    parser.add_argument("--retries", type=int, default=0)
    args = parser.parse_args()
    url = os.environ.get("REDPACKET_DATABASE_URL")
    with open_server("auto", url) as server:
        lab = Lab(server, "redpacket_bench")
        migrate.prepare(lab)
        todo = cells(list(STRATEGIES.values()), list(Isolation), list(SCHEDULE_NAMES))
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            runs = run_matrix(lab, todo, RetryPolicy(args.retries))
            times.append(time.perf_counter() - started)
        lab.drop()
    print(f"backend {server.backend}: {len(runs)} cells, retries {args.retries}")
    print(
        f"full matrix: median {statistics.median(times):.2f} s"
        f" (min {min(times):.2f}, max {max(times):.2f}); goal < 10 s"
    )


if __name__ == "__main__":
    main()
