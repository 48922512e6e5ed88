"""pgbench against the lab's stress harness, on the same database and the same SQL.

Usage: python benchmarks/vs_pgbench.py [--seconds 10] [--clients 1,8,32] [--rounds 3]
           [--strategies lock_first,on_conflict] [--processes 1,2] [--json FILE]

Loads 10,000 orders into a lab database of its own, grants each one once (so every
measured transaction takes the same "already granted" path in both tools), then
runs, interleaved, pgbench (-M prepared, a custom script made of the strategy's own
step SQL), pgbench again with those statements in \\startpipeline batches exactly as
the harness batches them (the same round trips: the fair comparison for a harness
that pipelines), and the harness (uniform workload), for lock_first and on_conflict
at each client count. Client parallelism is matched too: the harness in P processes
(``--processes``; one is what ``redpacket stress`` runs by default) beside pgbench with
``-j P`` threads, since one thread serving 32 connections loses to two on this
machine whichever tool it is. Each tool goes first in turn; the script prints the
medians of TPS and client CPU per transaction, the harness's ratios to both anchors
at the same parallelism, and its ratio to the best pipeline run at any parallelism
(the strictest yardstick). A pgbench run whose output is not a clean run's (debug
lines, failed or aborted transactions, no tps line) ends the benchmark instead of
giving a ratio. Goal: ratio to pipeline >= 0.8.
Uses REDPACKET_DATABASE_URL when set, else the lab's default backend.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import resource
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from redpacket.database import migrate
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.isolation import Isolation
from redpacket.service import DEFAULT_AMOUNT, DEFAULT_CAMPAIGN
from redpacket.strategies import STRATEGIES, Strategy, Walk
from redpacket.stress.fast import loop_build
from redpacket.stress.pipes import pipe_build
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
    items = compiled.first_batch
    while True:
        sql = [begin if kind == BEGIN else "COMMIT;" if kind == COMMIT else
               strategy.steps[index].sql + ";" for kind, index, *_ in items]  # fmt: skip
        batches.append(sql)
        end = None
        for kind, *_ in items:
            if kind == STEP:
                end = walk.row((b"1",) if next(path) else None)
        if end is not None:
            if all(kind != COMMIT for kind, *_ in items):
                batches.append(["COMMIT;"])
            break
        items = compiled.batches[walk.index]
    lines = [f"\\set order_id random(1, {ORDERS})"]
    for batch in batches:
        wrap = pipelined and len(batch) > 1
        lines += ["\\startpipeline", *batch, "\\endpipeline"] if wrap else batch
    return "\n".join(lines) + "\n"


class PgbenchOutputError(ValueError):
    """pgbench's output is not that of a clean run: no ratio may be printed from it."""


def read_tps(output: str, errors: str, clients: int) -> float:
    """The tps of a clean pgbench run, or PgbenchOutputError saying what is wrong with it.

    A run with debug output (``-d`` is ``--debug``, not the database), failed or
    aborted transactions, another client count or query mode than asked for, or no
    tps line at all measures something else than the comparison means.
    """
    debug = [line for line in errors.splitlines() if line.startswith("pgbench: client")]
    if debug or "dbName:" in errors:
        raise PgbenchOutputError(
            f"pgbench printed debug output ({len(debug)} lines; -d is --debug, not the database)"
        )
    if "Run was aborted" in output or "aborted in command" in errors:
        raise PgbenchOutputError("pgbench aborted a client: " + first_line(errors or output))
    fields = dict(
        line.split(": ", 1) for line in output.splitlines() if ": " in line and "=" not in line
    )
    failed = fields.get("number of failed transactions", "").split(" ")[0]
    if failed != "0":
        raise PgbenchOutputError(f"pgbench counted failed transactions: {failed or 'no such line'}")
    if fields.get("number of clients") != str(clients):
        raise PgbenchOutputError(f"pgbench ran {fields.get('number of clients')} clients")
    if fields.get("query mode") != "prepared":
        raise PgbenchOutputError(f"pgbench's query mode is {fields.get('query mode')}")
    processed = fields.get("number of transactions actually processed", "0").split("/")[0]
    if not processed.isdigit() or int(processed) == 0:
        raise PgbenchOutputError("pgbench processed no transaction")
    tps = re.findall(r"^tps = ([\d.]+) \(without initial connection time\)$", output, re.M)
    if len(tps) != 1:
        raise PgbenchOutputError("pgbench printed no tps line (or several)")
    return float(tps[0])


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "").strip()


def pgbench_command(
    lab: Lab, script: Path, clients: int, seconds: float, threads: int = 2
) -> tuple[list[str], dict[str, str]]:
    """The command line, every flag checked against pgbench's manual (``pgbench --help``).

    -n: no vacuum first; -M prepared: extended protocol, statements prepared once;
    -c: clients; -j: threads (no more than clients: pgbench refuses that); -T: seconds;
    -f: the script; -D: a script variable; -U/-h/-p: user, host, port. The database is
    the positional argument at the end.
    """
    url = lab.url
    command = [
        pgbench_binary(), "-n", "-M", "prepared",
        "-c", str(clients), "-j", str(min(threads, clients)),
        "-T", str(int(seconds)), "-f", str(script),
        "-D", f"campaign_id={DEFAULT_CAMPAIGN}", "-D", f"amount={DEFAULT_AMOUNT}",
        "-U", url.username or "postgres",
    ]  # fmt: skip
    host = url.host or url.query.get("host")
    if host:
        command += ["-h", str(host)]
    if url.port:
        command += ["-p", str(url.port)]
    command.append(url.database or "postgres")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return command, env


def run_pgbench(
    lab: Lab, schema: Schema, script: Path, clients: int, seconds: float, threads: int
) -> Measured:
    command, env = pgbench_command(lab, script, clients, seconds, threads)
    env["PGOPTIONS"] = f"-c search_path={schema.value}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise PgbenchOutputError(f"pgbench exited {done.returncode}: {first_line(done.stderr)}")
    tps = read_tps(done.stdout, done.stderr, clients)
    return Measured(tps, _cpu_s(before, after) / (tps * seconds))


def run_harness(
    lab: Lab, strategy: Strategy, clients: int, seconds: float, processes: int
) -> Measured:
    plan = StressPlan(
        strategy=strategy,
        isolation=Isolation.READ_COMMITTED,
        workers=clients,
        orders=ORDERS,
        workload=Workload.UNIFORM,
        processes=min(processes, clients),
        duration_s=seconds,
    )
    result = run_stress(lab, plan, reset=False)
    clean = result.check is not None and result.check.correct and result.history_check
    if result.error or result.tally.failed or result.tally.granted or not clean:
        raise SystemExit(f"the harness run was not clean: {result.to_json()}")
    return Measured(result.throughput_per_s, result.client_cpu_us_per_request / 1e6)


def prepare(lab: Lab) -> None:
    migrate.prepare(lab)
    lab.reset(ORDERS)
    for schema in Schema:
        with psycopg.connect(conninfo(lab.url_of(schema))) as conn:
            conn.execute(
                "INSERT INTO red_packets (order_id, campaign_id, amount)"
                " SELECT id, %s, %s FROM orders",
                (DEFAULT_CAMPAIGN, DEFAULT_AMOUNT),
            )
            conn.execute("ANALYZE")


@dataclass(frozen=True)
class Measured:
    tps: float
    cpu_s_per_txn: float  # client CPU per transaction (pgbench's or the harness's)


def _cpu_s(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


TOOLS = ("pgbench", "pipeline", "harness")
SUSPICIOUS_RATIO = 1.5  # beyond the anchor that far, a figure is a bug until explained
GOAL = 0.8


def parallelisms(clients: int, processes: list[int]) -> list[int]:
    """The client parallelism each cell runs at: P harness processes, ``-j P`` pgbench threads."""
    return sorted({min(count, clients) for count in processes})


def runs_of_cell(clients: int, processes: list[int]) -> tuple[str, ...]:
    return tuple(f"{tool}-{p}" for p in parallelisms(clients, processes) for tool in TOOLS)


def measure(
    lab: Lab, run: str, name: str, count: int, seconds: float, scripts: dict[tuple[str, bool], Path]
) -> Measured:
    tool, parallel = run.rsplit("-", 1)
    strategy = STRATEGIES[name]
    if tool == "harness":
        return run_harness(lab, strategy, count, seconds, int(parallel))
    schema = Schema.for_revision(strategy.requires_revision)
    script = scripts[name, tool == "pipeline"]
    return run_pgbench(lab, schema, script, count, seconds, int(parallel))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--strategies", default="lock_first,on_conflict")
    parser.add_argument(
        "--processes",
        default="1,2",
        help="the harness's processes, each beside pgbench with as many threads (-j);"
        " several (1,2) are run side by side in every round",
    )
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: a median of fewer is not a figure")
    clients = [int(c) for c in args.clients.split(",")]
    processes = [int(p) for p in args.processes.split(",")]
    names = args.strategies.split(",")
    results: dict[tuple[str, int], dict[str, list[Measured]]] = {}
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
                    runs = runs_of_cell(count, processes)
                    for name in names:
                        cell = results.setdefault((name, count), {run: [] for run in runs})
                        rotation = round_number % len(runs)  # each run goes first in turn
                        for run in runs[rotation:] + runs[:rotation]:
                            cell[run].append(measure(lab, run, name, count, args.seconds, scripts))
        lab.drop()
    print(f"backend {server.backend}; {ORDERS} orders, all already granted; uniform workload;"
          f" {args.seconds:g} s per run; medians of {args.rounds} interleaved rounds;"
          f" harness loop {loop_build()}, {pipe_build()}")  # fmt: skip
    print(
        "pgbench: -M prepared, one statement per round trip; pipeline: the same statements"
        " batched as the harness batches them (same round trips); both with -j P threads"
        " beside the harness's P processes. best: the best pipeline median at any -j."
        " cpu: client CPU µs per transaction (pgbench's process; the harness's engine"
        " processes while they ran)"
    )
    header = f"{'strategy':<12} {'clients':>7} {'P':>2} {'pgbench':>9} {'pipeline':>9}"
    header += f" {'harness':>9} {'ratio':>6} {'to pipeline':>11} {'to best':>7}"
    print(header + f" {'cpu pgb':>8} {'cpu pipe':>8} {'cpu ours':>8}")
    suspicious, short = [], []
    for (name, count), cell in results.items():
        tps = {run: statistics.median(m.tps for m in cell[run]) for run in cell}
        cpu = {run: statistics.median(m.cpu_s_per_txn for m in cell[run]) * 1e6 for run in cell}
        best = max(tps[run] for run in cell if run.startswith("pipeline-"))
        for p in parallelisms(count, processes):
            pg, piped, ours = (tps[f"{tool}-{p}"] for tool in TOOLS)
            print(f"{name:<12} {count:>7} {p:>2} {pg:>9,.0f} {piped:>9,.0f} {ours:>9,.0f}"
                  f" {ours / pg:>6.2f} {ours / piped:>11.2f} {ours / best:>7.2f}"
                  + "".join(f" {cpu[f'{tool}-{p}']:>8.1f}" for tool in TOOLS))  # fmt: skip
            where = f"{name} at {count} clients, {p} processes"
            if ours / piped > SUSPICIOUS_RATIO:
                suspicious.append(f"{where}: {ours / piped:.2f}x pgbench-pipeline")
            if ours / piped < GOAL:
                short.append(f"{where}: {ours / piped:.2f}")
    for line in suspicious:
        print(f"CHECK: {line}; a figure this far beyond the anchor is a bug until explained")
    print(f"goal (harness / pipeline at the same parallelism >= {GOAL}): "
          + ("met in every row" if not short else "short in " + "; ".join(short)))  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps([
            {"strategy": name, "clients": count, "run": run, "round": index + 1,
             "tps": m.tps, "client_cpu_us": m.cpu_s_per_txn * 1e6}
            for (name, count), cell in results.items()
            for run, measured in cell.items() for index, m in enumerate(measured)
        ], indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
