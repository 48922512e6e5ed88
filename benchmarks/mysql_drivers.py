"""The MySQL drivers that install from a wheel, side by side with mysqlclient if it is here.

Usage: python benchmarks/mysql_drivers.py [--seconds 5] [--rounds 3] [--threads 1,8]
       [--drivers pymysql,mysqlconnector,asyncmy,mariadb,mysqlclient]

Each transaction is ``START TRANSACTION; SELECT id FROM orders WHERE id = %s FOR UPDATE;
COMMIT`` over a random one of 10,000 orders, through the driver's own DB-API cursor
(asyncmy has no blocking API: its rows are N tasks on one asyncio loop). Two figures
per driver, as the README's driver table: transactions per second, and the client's
CPU (user + system, this process) per transaction in microseconds, with one
connection and with N threads each on a connection of its own. Rounds go through
the drivers in turn, each round in another order; medians. The tables live in a
database of the script's own (``redpacket_drivers_bench``), dropped at the end.
Drivers that are not installed are left out, saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import resource
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

DATABASE = "redpacket_drivers_bench"
ORDERS = 10_000
LOCK = "SELECT id FROM orders WHERE id = %s FOR UPDATE"


def server() -> dict[str, Any]:
    url = urlsplit(os.environ.get("REDPACKET_MYSQL_URL", "mysql://root@127.0.0.1:3306/"))
    return {"host": url.hostname or "127.0.0.1", "port": url.port or 3306,
            "user": url.username or "root", "password": url.password or ""}  # fmt: skip


def connector(name: str) -> Callable[[], Any] | None:
    """A function that opens one blocking DB-API connection with this driver."""
    where = server()
    if name == "pymysql" and importlib.util.find_spec("pymysql"):
        import pymysql

        return lambda: pymysql.connect(**where, database=DATABASE)
    if name == "mysqlconnector" and importlib.util.find_spec("mysql.connector"):
        import mysql.connector

        return lambda: mysql.connector.connect(**where, database=DATABASE, use_pure=False)
    if name == "mariadb" and importlib.util.find_spec("mariadb"):
        import mariadb

        return lambda: mariadb.connect(**where, database=DATABASE)
    if name == "mysqlclient" and importlib.util.find_spec("MySQLdb"):
        import MySQLdb

        return lambda: MySQLdb.connect(**where, database=DATABASE)
    return None


def blocking_run(connect: Callable[[], Any], threads: int, seconds: float) -> tuple[int, float]:
    conns = [connect() for _ in range(threads)]
    done = [0] * threads
    stop = time.monotonic() + seconds
    barrier = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        conn = conns[i]
        cursor = conn.cursor()
        rng = random.Random(i)
        barrier.wait()
        n = 0
        while time.monotonic() < stop:
            cursor.execute("START TRANSACTION")
            cursor.execute(LOCK, (rng.randint(1, ORDERS),))
            cursor.fetchall()
            cursor.execute("COMMIT")
            n += 1
        done[i] = n

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    barrier.wait()
    for thread in pool:
        thread.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    for conn in conns:
        conn.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    total = sum(done)
    return round(total / wall), cpu / total * 1e6


def asyncmy_run(threads: int, seconds: float) -> tuple[int, float]:
    import asyncmy

    async def main() -> tuple[int, float]:
        conns = [await asyncmy.connect(**server(), db=DATABASE, autocommit=True)
                 for _ in range(threads)]  # fmt: skip
        stop = time.monotonic() + seconds

        async def work(i: int) -> int:
            rng = random.Random(i)
            n = 0
            async with conns[i].cursor() as cursor:
                while time.monotonic() < stop:
                    await cursor.execute("START TRANSACTION")
                    await cursor.execute(LOCK, (rng.randint(1, ORDERS),))
                    await cursor.fetchall()
                    await cursor.execute("COMMIT")
                    n += 1
            return n

        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        done = await asyncio.gather(*(work(i) for i in range(threads)))
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        for conn in conns:
            conn.close()
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return round(sum(done) / wall), cpu / sum(done) * 1e6

    return asyncio.run(main())


def prepare() -> Callable[[], None]:
    import pymysql  # the project's own dependency: it sets up and drops the database

    admin = pymysql.connect(**server(), autocommit=True)
    cursor = admin.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    cursor.execute(f"CREATE DATABASE {DATABASE}")
    cursor.execute(f"CREATE TABLE {DATABASE}.orders (id INT PRIMARY KEY, amount DECIMAL(10,2))")
    rows = ",".join(f"({i}, 10.00)" for i in range(1, ORDERS + 1))
    cursor.execute(f"INSERT INTO {DATABASE}.orders VALUES {rows}")  # noqa: S608

    def drop() -> None:
        cursor.execute(f"DROP DATABASE {DATABASE}")
        admin.close()

    return drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--drivers", default="pymysql,mysqlconnector,asyncmy,mariadb,mysqlclient")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    runners: dict[str, Callable[[int, float], tuple[int, float]]] = {}
    for name in args.drivers.split(","):
        if name == "asyncmy":
            if importlib.util.find_spec("asyncmy"):
                runners[name] = asyncmy_run
            else:
                print("asyncmy: not installed, left out")
            continue
        connect = connector(name)
        if connect is None:
            print(f"{name}: not installed, left out")
            continue
        runners[name] = lambda n, s, c=connect: blocking_run(c, n, s)  # type: ignore[misc]
    drop = prepare()
    results: dict[tuple[str, int], list[tuple[int, float]]] = {}
    try:
        for round_number in range(args.rounds):
            names = list(runners)
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                for threads in counts:
                    figure = runners[name](threads, args.seconds)
                    results.setdefault((name, threads), []).append(figure)
                    tps, cpu = figure
                    print(f"round {round_number + 1}: {name} x{threads}: {tps} tps,"
                          f" {cpu:.0f} us client CPU per transaction", flush=True)  # fmt: skip
    finally:
        drop()
    print()
    header = " | ".join(f"{n} conn tps | cpu us" for n in counts)
    print(f"| driver | {header} |")
    print("|---|" + "---|---|" * len(counts))
    for name in runners:
        cells = []
        for threads in counts:
            got = results[(name, threads)]
            cells.append(f"{statistics.median(t for t, _ in got):,.0f}")
            cells.append(f"{statistics.median(c for _, c in got):.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
