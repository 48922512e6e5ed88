"""pgbench against the lab's stress harness, on the same database and the same SQL.

Usage: python benchmarks/vs_pgbench.py [--seconds 10] [--clients 1,8,32] [--rounds 1]

Loads 10,000 orders into a lab database of its own, grants each one once (so every
measured transaction takes the same "already granted" path in both tools), then
runs, interleaved, pgbench (-M prepared, a custom script made of the strategy's own
step SQL), pgbench again with those statements in \\startpipeline batches exactly as
the harness batches them (the same round trips: the fair comparison for a harness
that pipelines), and the harness (uniform workload), for lock_first and on_conflict
at each client count, and prints TPS for all three and the harness's ratios.
Goal: ratio >= 0.8.
Uses REDPACKET_DATABASE_URL when set, else the lab's default backend.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

import psycopg

from redpacket.database import migrate
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab, Schema
from redpacket.isolation import Isolation
from redpacket.service import DEFAULT_AMOUNT, DEFAULT_CAMPAIGN
from redpacket.strategies import STRATEGIES, Strategy, Walk
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.runner import run_stress
from redpacket.stress.statements import BEGIN, COMMIT, STEP, Compiled

ORDERS = 10_000
# The rows each step returns on the "already granted" path: it decides the steps sent.
ALREADY_GRANTED_PATH = {"lock_first": [True, True], "on_conflict": [False]}


def pgbench_binary() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    if not found:
        raise SystemExit("pgbench not found under /usr/lib/postgresql/*/bin")
    return found[-1]


def pgbench_script(strategy: Strategy, pipelined: bool = False) -> str:
    """The strategy's own step SQL, in the order the already-granted path sends it.

    ``pipelined``: each group of statements the harness sends as one pipeline batch
    (BEGIN with the first step, every step up to the next client-side decision,
    COMMIT with a step that always commits) goes between \\startpipeline and
    \\endpipeline, so pgbench makes exactly the harness's round trips.
    """
    begin = "BEGIN ISOLATION LEVEL READ COMMITTED;"
    compiled = Compiled(strategy, begin)
    walk = Walk(strategy, {})
    path = iter(ALREADY_GRANTED_PATH[strategy.name])
    batches: list[list[str]] = []
    items = ((BEGIN, -1), *compiled.batches[0])
    while True:
        sql = [begin if kind == BEGIN else "COMMIT;" if kind == COMMIT else
               strategy.steps[index].sql + ";" for kind, index in items]  # fmt: skip
        batches.append(sql)
        end = None
        for kind, _index in items:
            if kind == STEP:
                end = walk.row((b"1",) if next(path) else None)
        if end is not None:
            if all(kind != COMMIT for kind, _index in items):
                batches.append(["COMMIT;"])
            break
        items = compiled.batches[walk.index]
    lines = [f"\\set order_id random(1, {ORDERS})"]
    for batch in batches:
        wrap = pipelined and len(batch) > 1
        lines += ["\\startpipeline", *batch, "\\endpipeline"] if wrap else batch
    return "\n".join(lines) + "\n"


def run_pgbench(lab: Lab, schema: Schema, script: Path, clients: int, seconds: float) -> float:
    url = lab.url
    command = [
        pgbench_binary(), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(2, clients)),
        "-T", str(int(seconds)), "-f", str(script),
        "-D", f"campaign_id={DEFAULT_CAMPAIGN}", "-D", f"amount={DEFAULT_AMOUNT}",
        "-U", url.username or "postgres", "-d", url.database or "",
    ]  # fmt: skip
    host = url.host or url.query.get("host")
    if host:
        command += ["-h", str(host)]
    if url.port:
        command += ["-p", str(url.port)]
    env = os.environ | {"PGOPTIONS": f"-c search_path={schema.value}"}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    match = re.search(r"tps = ([\d.]+)", output)
    if not match:
        raise SystemExit(f"could not read pgbench's tps from:\n{output}")
    return float(match.group(1))


def run_harness(lab: Lab, strategy: Strategy, clients: int, seconds: float) -> float:
    plan = StressPlan(
        strategy,
        Isolation.READ_COMMITTED,
        workers=clients,
        orders=ORDERS,
        workload=Workload.UNIFORM,
        processes=min(2, clients),
        duration_s=seconds,
    )
    return run_stress(lab, plan, reset=False).throughput_per_s


def prepare(lab: Lab) -> None:
    migrate.prepare(lab)
    lab.reset(ORDERS)
    for schema in Schema:
        with psycopg.connect(lab.conninfo(schema)) as conn:
            conn.execute(
                "INSERT INTO red_packets (order_id, campaign_id, amount)"
                " SELECT id, %s, %s FROM orders",
                (DEFAULT_CAMPAIGN, DEFAULT_AMOUNT),
            )
            conn.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--strategies", default="lock_first,on_conflict")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    names = args.strategies.split(",")
    tools = ("pgbench", "pgbench-pipeline", "harness")
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    with open_server("auto", os.environ.get("REDPACKET_DATABASE_URL")) as server:
        lab = Lab(server, "redpacket_bench")
        prepare(lab)
        with tempfile.TemporaryDirectory() as folder:
            scripts: dict[tuple[str, bool], Path] = {}
            for name in names:
                for pipelined in (False, True):
                    script = Path(folder) / f"{name}{'-pipeline' if pipelined else ''}.sql"
                    script.write_text(pgbench_script(STRATEGIES[name], pipelined))
                    scripts[name, pipelined] = script
            for round_number in range(args.rounds):
                for count in clients:
                    for name in names:
                        strategy = STRATEGIES[name]
                        schema = Schema.for_revision(strategy.requires_revision)
                        cell = results.setdefault((name, count), {tool: [] for tool in tools})
                        order = list(tools) if round_number % 2 == 0 else list(reversed(tools))
                        for tool in order:
                            if tool == "harness":
                                tps = run_harness(lab, strategy, count, args.seconds)
                            else:
                                script = scripts[name, tool == "pgbench-pipeline"]
                                tps = run_pgbench(lab, schema, script, count, args.seconds)
                            cell[tool].append(tps)
        lab.drop()
    print(f"backend {server.backend}; {ORDERS} orders, all already granted; uniform workload;"
          f" {args.seconds:g} s per run; medians of {args.rounds} round(s)")  # fmt: skip
    print(
        "pgbench: -M prepared, one statement per round trip; pgbench-pipeline: the same"
        " statements batched as the harness batches them (same round trips)"
    )
    print(f"{'strategy':<12} {'clients':>7} {'pgbench':>9} {'pipeline':>9} {'harness':>9}"
          f" {'ratio':>6} {'ratio to pipeline':>18}")  # fmt: skip
    for (name, count), cell in results.items():
        pg, piped, ours = (statistics.median(cell[tool]) for tool in tools)
        print(f"{name:<12} {count:>7} {pg:>9,.0f} {piped:>9,.0f} {ours:>9,.0f}"
              f" {ours / pg:>6.2f} {ours / piped:>18.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
