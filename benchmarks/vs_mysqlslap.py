"""mysqlslap against the lab's stress harness on MySQL/MariaDB: the same SQL, the same clients.

Usage: python benchmarks/vs_mysqlslap.py [--clients 1,8,32] [--rounds 3] [--per-client 4000]
       [--strategies lock_first,on_conflict]

Loads 10,000 orders into a lab database of its own (REDPACKET_MYSQL_URL, default
mysql://root@127.0.0.1:3306/), grants each once, so every measured transaction
takes the "already granted" path in both tools. mysqlslap cannot pick a random
order per transaction, and clients reading one file would march through the same
ids in lockstep; so each client is a mysqlslap process of its own
(``--concurrency=1``) with its own file of transactions over random orders, all
started together, each file opening with the isolation level for its session (the
harness sets it once per connection too). Each transaction is exactly the statements
the harness sends on that path, one statement per round trip, in the order it sends
them, with autocommit off and no START TRANSACTION, as the harness runs. The harness runs the
same number of transactions (uniform workload, ``--attempts``). Rounds alternate
which tool goes first; medians. Flags checked against ``mysqlslap --help``:
``--concurrency``, ``--iterations``, ``--query`` (a file), ``--delimiter``,
``--create-schema`` (the database to run in), ``--no-drop``, ``--init-command`` (run on
connecting: ``SET autocommit = 0``), ``-h``/``-P``/``-u``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from redpacket.database import migrate
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab, Schema
from redpacket.engines import engine_named
from redpacket.isolation import Isolation
from redpacket.service import DEFAULT_AMOUNT, DEFAULT_CAMPAIGN
from redpacket.strategies import STRATEGIES, Strategy, Walk
from redpacket.stress.fast import loop_build
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.runner import run_stress

ORDERS = 10_000
DELIMITER = "|"  # between mysqlslap's queries; ";" stays inside a batched one
LEVEL = Isolation.READ_COMMITTED
# The rows each step returns on the "already granted" path: it decides the steps sent.
ALREADY_GRANTED_PATH = {"lock_first": [True, True], "on_conflict": [False, True]}


def transaction(strategy: Strategy, order_id: int) -> list[str]:
    """The queries the harness sends for one already-granted request, values inlined, one
    statement per round trip (redpacket/stress/mysql_loop.py): each step the path reaches,
    then COMMIT. No START TRANSACTION: the session runs with autocommit off."""
    steps = strategy.for_engine("mysql")
    walk = Walk(steps, {})
    values = {"order_id": str(order_id), "campaign_id": f"'{DEFAULT_CAMPAIGN}'",
              "amount": str(DEFAULT_AMOUNT)}  # fmt: skip
    sent = []
    path = iter(ALREADY_GRANTED_PATH[strategy.name])
    end = None
    while end is None:
        sent.append(re.sub(r":(\w+)", lambda m: values[m.group(1)], walk.step.sql))
        end = walk.row(("1",) if next(path) else None)
    sent.append("COMMIT")
    assert all(DELIMITER not in query for query in sent)
    return sent


def _once_per_session() -> tuple[str, ...]:
    once, _begin = engine_named("mysql").session_level(LEVEL)
    return once


def run_mysqlslap(
    lab: Lab, strategy: Strategy, clients: int, per_client: int, folder: Path
) -> tuple[float, float]:
    """(transactions per second, client CPU seconds per transaction) over ``clients`` processes."""
    url = lab.url_of(Schema.for_revision(strategy.requires_revision))
    files = []
    rng = random.Random(clients)
    for client in range(clients):
        path = folder / f"{strategy.name}-{clients}-{client}.sql"
        lines = list(_once_per_session())  # as the harness: the level once per connection
        for _ in range(per_client):
            lines += transaction(strategy, rng.randint(1, ORDERS))
        path.write_text(f"{DELIMITER}\n".join(lines) + f"{DELIMITER}\n")
        files.append(path)
    binary = shutil.which("mysqlslap") or shutil.which("mariadb-slap") or "mysqlslap"
    base = [binary, "-h", url.host or "127.0.0.1", "-P", str(url.port or 3306),
            "-u", url.username or "root", f"--create-schema={url.database}", "--no-drop",
            "--concurrency=1", "--iterations=1", f"--delimiter={DELIMITER}",
            "--init-command=SET autocommit = 0"]  # fmt: skip
    env = dict(os.environ)
    if url.password:
        env["MYSQL_PWD"] = str(url.password)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    running = [
        subprocess.Popen([*base, f"--query={path}"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        for path in files
    ]  # fmt: skip
    outputs = [process.communicate() for process in running]
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for process, (out, err) in zip(running, outputs, strict=True):
        if process.returncode != 0 or "Average number of seconds" not in out:
            raise SystemExit(f"mysqlslap failed ({process.returncode}): {err.strip() or out}")
    transactions = clients * per_client
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return transactions / elapsed, cpu / transactions


def run_harness(
    lab: Lab, strategy: Strategy, clients: int, per_client: int, processes: int = 1
) -> tuple[float, float]:
    plan = StressPlan(
        strategy=strategy,
        isolation=LEVEL,
        workers=clients,
        orders=ORDERS,
        workload=Workload.UNIFORM,
        processes=min(processes, clients),
        attempts=clients * per_client,
    )
    result = run_stress(lab, plan, reset=False)
    clean = result.check is not None and result.check.correct
    if result.error or result.tally.failed or result.tally.granted or not clean:
        raise SystemExit(f"the harness run was not clean: {result.to_json()}")
    return result.throughput_per_s, result.client_cpu_us_per_request / 1e6


def prepare(lab: Lab) -> None:
    migrate.prepare(lab)
    lab.reset(ORDERS)
    for schema in Schema:
        with lab.connect(schema) as conn:
            cursor = conn.cursor()
            cursor.execute(
                "INSERT INTO red_packets (order_id, campaign_id, amount)"
                " SELECT id, %s, %s FROM orders",
                (DEFAULT_CAMPAIGN, DEFAULT_AMOUNT),
            )
            cursor.execute("ANALYZE TABLE orders, red_packets")
            cursor.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-client", type=int, default=0, help="default: 24000 / clients")
    parser.add_argument("--strategies", default="lock_first,on_conflict")
    parser.add_argument("--processes", type=int, default=1, help="the harness's processes")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: a median of fewer is not a figure")
    url = os.environ.get("REDPACKET_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
    results: dict[tuple[str, int], dict[str, list[tuple[float, float]]]] = {}
    with open_server("url", url) as server, tempfile.TemporaryDirectory() as folder:
        lab = Lab(server, "redpacket_bench")
        prepare(lab)
        for round_number in range(args.rounds):
            for count in (int(c) for c in args.clients.split(",")):
                per_client = args.per_client or max(500, 24000 // count)
                for name in args.strategies.split(","):
                    strategy = STRATEGIES[name]
                    cell = results.setdefault((name, count), {"mysqlslap": [], "harness": []})
                    tools = ["mysqlslap", "harness"]
                    for tool in tools if round_number % 2 == 0 else tools[::-1]:
                        if tool == "harness":
                            cell[tool].append(
                                run_harness(lab, strategy, count, per_client, args.processes)
                            )
                        else:
                            cell[tool].append(
                                run_mysqlslap(lab, strategy, count, per_client, Path(folder))
                            )
        lab.drop()
    print(f"{server.engine.label} at {server.masked_url}; {ORDERS} orders, all already granted;"
          f" {LEVEL.value}; medians of {args.rounds} interleaved rounds;"
          f" harness loop {loop_build()}, {args.processes} process(es)")  # fmt: skip
    print("mysqlslap: one process per client (--concurrency=1), each its own file of"
          " transactions over random orders; cpu: client CPU us per transaction")  # fmt: skip
    print(f"{'strategy':<12} {'clients':>7} {'mysqlslap':>10} {'harness':>9} {'ratio':>6}"
          f" {'cpu slap':>9} {'cpu ours':>9}")  # fmt: skip
    for (name, count), cell in results.items():
        slap = statistics.median(tps for tps, _ in cell["mysqlslap"])
        ours = statistics.median(tps for tps, _ in cell["harness"])
        cpu_slap = statistics.median(cpu for _, cpu in cell["mysqlslap"]) * 1e6
        cpu_ours = statistics.median(cpu for _, cpu in cell["harness"]) * 1e6
        print(f"{name:<12} {count:>7} {slap:>10,.0f} {ours:>9,.0f} {ours / slap:>6.2f}"
              f" {cpu_slap:>9.1f} {cpu_ours:>9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
