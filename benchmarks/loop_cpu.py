"""Client CPU per transaction of the loop engine, in this process, on the already-granted path.

Usage: python benchmarks/loop_cpu.py [--strategy on_conflict] [--workers 8]
           [--attempts 20000] [--prepare] [--profile FILE] [--mysql]

The same setup as vs_pgbench.py (10,000 orders, every one already granted, uniform
workload, read committed; ``--mysql``: vs_mysqlslap.py's, on REDPACKET_MYSQL_URL or
the local MariaDB), but one loop engine in this very process and a fixed
number of requests, so that the figure is this process's own CPU (user + system)
and can be profiled (``--profile``: cProfile stats) or counted in instructions:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/loop_cpu.py --attempts 4000    # and again with 8000

The difference of the two totals, divided by 4000, is the client's instructions per
transaction, free of start-up cost and of the machine's noise. ``--prepare`` loads
the lab database first (once; vs_pgbench.py drops it when it ends).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import time

from benchmarks import vs_mysqlslap, vs_pgbench
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab, Schema
from redpacket.isolation import Isolation
from redpacket.strategies import STRATEGIES
from redpacket.stress.fast import build, loop_build
from redpacket.stress.pipes import pipe_build
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.tally import Tally

LAB = "redpacket_loop_cpu"


def keep_going(_tally: Tally) -> bool:
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="on_conflict")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--attempts", type=int, default=20_000)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--profile", metavar="FILE")
    parser.add_argument("--mysql", action="store_true")
    args = parser.parse_args()
    strategy = STRATEGIES[args.strategy]
    bench = vs_mysqlslap if args.mysql else vs_pgbench
    if args.mysql:
        backend: tuple[str, str | None] = (
            "url",
            os.environ.get("REDPACKET_MYSQL_URL", "mysql://root@127.0.0.1:3306/"),
        )
    else:
        backend = "auto", os.environ.get("REDPACKET_DATABASE_URL")
    with open_server(*backend) as server:
        lab = Lab(server, LAB)
        if args.prepare or not lab.exists():
            bench.prepare(lab)
        plan = StressPlan(
            strategy=strategy,
            isolation=Isolation.READ_COMMITTED,
            workers=args.workers,
            orders=bench.ORDERS,
            workload=Workload.UNIFORM,
        )
        schema = Schema.for_revision(strategy.requires_revision)
        url = lab.url_of(schema).render_as_string(hide_password=False)
        engine = build(plan, lab.engine.name, url, args.workers, args.attempts, seed=1)
        profiler = cProfile.Profile() if args.profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        tally = engine.run(None, keep_going)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        engine.close()
    if tally.attempts != args.attempts or tally.already_granted != args.attempts:
        raise SystemExit(f"not a clean run: {tally.attempts} attempts, {tally.failed}")
    print(
        f"{args.strategy} {args.workers} workers: {args.attempts / wall:,.0f} tps,"
        f" client CPU {cpu / args.attempts * 1e6:.1f} µs per transaction ({loop_build()},"
        f" {'mysqlclient' if args.mysql else pipe_build()})"
    )


if __name__ == "__main__":
    main()
