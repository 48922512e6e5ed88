"""How often ``race.hammer`` at its defaults finds a one-key check-then-insert duplicate.

Usage: python benchmarks/hammer_detection.py [--runs 100] [--engines postgresql,mariadb]
       [--reset]

The bug: ``SELECT 1 FROM claims WHERE k = 1``, and if no row, ``INSERT INTO claims
VALUES (1)``, in one transaction at the engine's default level (READ COMMITTED on
PostgreSQL, REPEATABLE READ on InnoDB: neither prevents it). Each run empties the
table and hammers the claim at the hammer's defaults (16 workers, 100 rounds) on an
engine pooled as the pytest plugin's is; it is found when the table then holds more
than one row (with --reset: when any round's check found more than one). Servers:
REDPACKET_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres) and
REDPACKET_MYSQL_URL (default mysql://root@127.0.0.1:3306/); each in a database of
the lab's own (``redpacket_hammer_bench_race``), dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from sqlalchemy import Engine, create_engine, text

from redpacket.database import ownership
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab
from redpacket.pytest_plugin import POOL
from redpacket.race.hammer import hammer

URLS = {
    "postgresql": os.environ.get(
        "REDPACKET_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("REDPACKET_MYSQL_URL", "mysql://root@127.0.0.1:3306/"),
}


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM claims")).scalar_one())


def measure(engine: Engine, runs: int, reset: bool) -> tuple[int, list[int], list[float]]:
    def claim() -> None:
        with engine.begin() as conn:
            if conn.execute(text("SELECT 1 FROM claims WHERE k = 1")).first() is None:
                conn.execute(text("INSERT INTO claims VALUES (1)"))

    def empty() -> None:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM claims"))

    def check() -> str | None:
        count = rows(engine)
        return None if count <= 1 else f"{count} claims"

    found, overlapped, seconds = 0, [], []
    for run in range(runs):
        empty()
        started = time.perf_counter()
        if reset:
            result = hammer(engine, claim, reset=empty, check=check)
            hit = bool(result.broken_rounds)
        else:
            result = hammer(engine, claim)
            hit = rows(engine) > 1
        seconds.append(time.perf_counter() - started)
        found += hit
        overlapped.append(result.overlapped)
        print(f"run {run + 1}: {'found' if hit else 'MISSED'}; {result.summary()}", flush=True)
    return found, overlapped, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--engines", default="postgresql,mariadb")
    parser.add_argument("--reset", action="store_true")
    args = parser.parse_args()
    report = []
    for name in args.engines.split(","):
        with open_server("url", URLS[name]) as server:
            lab = Lab(server, "redpacket_hammer_bench")
            created = ownership.ensure_database(lab, lab.race_database)
            engine = create_engine(server.url.set(database=lab.race_database), **POOL)
            try:
                with engine.begin() as conn:
                    conn.execute(text("DROP TABLE IF EXISTS claims"))
                    conn.execute(text("CREATE TABLE claims (k int)"))
                found, overlapped, seconds = measure(engine, args.runs, args.reset)
            finally:
                engine.dispose()
                if created:
                    ownership.drop_database(lab, lab.race_database)
        report.append(
            f"{name}: found the duplicate in {found} of {args.runs} runs; rounds overlapped"
            f" (median of runs) {statistics.median(overlapped)} of 100; median"
            f" {statistics.median(seconds):.2f} s a run"
        )
    print("\n".join(report))


if __name__ == "__main__":
    main()
