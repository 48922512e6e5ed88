"""The proxy as a load test's hop: pgbench direct, through pgbouncer, through the proxy;
mysqlslap direct and through the proxy.

Usage: python benchmarks/vs_pgbouncer.py [--seconds 10] [--rounds 3] [--clients 8]
           [--traced] [--no-mysql]

PostgreSQL (REDPACKET_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres):
a database of its own, ``redpacket_bench_wire``, made by ``pgbench -i -s 10``, dropped at
the end. Each round runs, each target first in turn, ``pgbench -n -S -M prepared -c 8 -j 2
-T SECONDS`` against the server itself, pgbouncer in session mode (Debian's ``pgbouncer``,
a config of its own in a temporary directory, ``auth_type = trust``, pool larger than the
clients) and ``redpacket proxy --pass-through`` (with ``--traced``: the tracing proxy
too). Flags checked against ``pgbench --help``: -n no vacuum, -S select-only, -M prepared,
-c clients, -j threads, -T seconds, -h/-p/-U; the database is the positional argument
(``-d`` is --debug). pgbench's output must be a clean run's (vs_pgbench.read_tps).

MariaDB (REDPACKET_MYSQL_URL, default mysql://root@127.0.0.1:3306/): the same point
select by primary key over 100,000 rows, ``mysqlslap --concurrency=8 --iterations=1
--number-of-queries=N --query=FILE --create-schema=redpacket_bench_wire`` direct and
through the proxy (flags checked against ``mysqlslap --help``: --number-of-queries is
the total over the clients, "not exact"; the rate is N / the seconds it reports).

Prints medians over the rounds and each proxy's ratio to pgbouncer (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from vs_pgbench import PgbenchOutputError, first_line, pgbench_binary, read_tps

DATABASE = "redpacket_bench_wire"
LOAD_ACCOUNTS = (
    "CREATE TABLE accounts (aid INT PRIMARY KEY, abalance INT);"
    " INSERT INTO accounts SELECT seq, 0 FROM seq_1_to_100000"
)
POINT_SELECT = "SELECT abalance FROM accounts WHERE aid = {aid}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} never listened on {port}")


@contextlib.contextmanager
def started(command: list[str], port: int, what: str, log: Path) -> Iterator[None]:
    with log.open("wb") as out, subprocess.Popen(command, stdout=out, stderr=out) as process:
        try:
            wait_for_port(port, process, what)
            yield
        finally:
            process.terminate()
            process.wait(10)


def proxy_command(upstream: str, port: int, pass_through: bool) -> list[str]:
    command = [sys.executable, "-m", "redpacket", "proxy", "--upstream", upstream,
               "--listen", f"127.0.0.1:{port}"]  # fmt: skip
    return [*command, "--pass-through"] if pass_through else [*command, "--json"]


def pgbouncer(directory: Path, port: int) -> list[str]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        raise SystemExit("pgbouncer not found (Debian's package pgbouncer)")
    (directory / "users.txt").write_text('"postgres" ""\n')
    (directory / "pgbouncer.ini").write_text(
        f"[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
        f"listen_port = {port}\nunix_socket_dir =\nauth_type = trust\n"
        f"auth_file = {directory}/users.txt\npool_mode = session\ndefault_pool_size = 40\n"
        "max_client_conn = 100\n"
    )
    command = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root: -u, --user=USERNAME
        shutil.chown(directory, "postgres")
        command[1:1] = ["-u", "postgres"]
    return command


def pgbench(port: int, clients: int, seconds: int) -> float:
    command = [pgbench_binary(), "-n", "-S", "-M", "prepared", "-c", str(clients),
               "-j", str(min(2, clients)), "-T", str(seconds), "-h", "127.0.0.1",
               "-p", str(port), "-U", "postgres", DATABASE]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PgbenchOutputError(f"pgbench exited {done.returncode}: {first_line(done.stderr)}")
    return read_tps(done.stdout, done.stderr, clients)


def mysqlslap(port: int, clients: int, queries: int, query_file: Path) -> float:
    command = ["mysqlslap", "-h", "127.0.0.1", "-P", str(port), "-u", "root",
               f"--concurrency={clients}", "--iterations=1", f"--number-of-queries={queries}",
               f"--query={query_file}", "--delimiter=;", f"--create-schema={DATABASE}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = re.findall(r"Average number of seconds to run all queries: ([\d.]+)", done.stdout)
    if done.returncode != 0 or len(seconds) != 1 or float(seconds[0]) <= 0:
        raise SystemExit(f"mysqlslap failed: {first_line(done.stderr or done.stdout)}")
    return queries / float(seconds[0])


def mysql(sql: str) -> None:
    subprocess.run(["mysql", "-h", "127.0.0.1", "-u", "root", "-e", sql], check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--traced", action="store_true", help="also the tracing proxy")
    parser.add_argument("--no-mysql", action="store_true")
    args = parser.parse_args()
    pg_url = "postgresql://postgres@127.0.0.1:5432/"
    psql = ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"]
    subprocess.run([*psql, f"DROP DATABASE IF EXISTS {DATABASE}"], check=True)
    subprocess.run([*psql, f"CREATE DATABASE {DATABASE}"], check=True)
    subprocess.run([pgbench_binary(), "-i", "-q", "-s", "10", "-h", "127.0.0.1",
                    "-U", "postgres", DATABASE], check=True, capture_output=True)  # fmt: skip
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="redpacket-bench-wire-") as scratch:
        directory = Path(scratch)
        os.chmod(directory, 0o755)
        ports = {"pgbouncer": free_port(), "proxy": free_port(), "traced": free_port()}
        with contextlib.ExitStack() as stack:
            bouncer = pgbouncer(directory, ports["pgbouncer"])
            stack.enter_context(
                started(bouncer, ports["pgbouncer"], "pgbouncer", directory / "pgb.log")
            )
            fast = proxy_command(pg_url + DATABASE, ports["proxy"], True)
            stack.enter_context(
                started(fast, ports["proxy"], "redpacket proxy", directory / "p.log")
            )
            targets = {"direct": 5432, "pgbouncer": ports["pgbouncer"], "proxy": ports["proxy"]}
            if args.traced:
                stack.enter_context(started(
                    proxy_command(pg_url + DATABASE, ports["traced"], False),
                    ports["traced"], "redpacket proxy (traced)", directory / "t.log"))  # fmt: skip
                targets["traced"] = ports["traced"]
            names = list(targets)
            for round_ in range(args.rounds):
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    tps = pgbench(targets[name], args.clients, args.seconds)
                    results.setdefault(f"pg {name}", []).append(tps)
                    print(f"round {round_ + 1}: pgbench {name}: {tps:,.0f} tps", flush=True)
        if not args.no_mysql:
            mysql(
                f"DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE}; USE {DATABASE};"
            )
            mysql(f"USE {DATABASE}; {LOAD_ACCOUNTS}")
            query_file = directory / "select.sql"
            chosen = random.Random(7).choices(range(1, 100_001), k=2000)
            query_file.write_text(";".join(
                POINT_SELECT.format(aid=aid) for aid in chosen))  # fmt: skip
            queries = 2000 * args.seconds * 10
            port = free_port()
            with started(proxy_command("mysql://root@127.0.0.1:3306/", port, True),
                         port, "redpacket proxy", directory / "m.log"):  # fmt: skip
                targets = {"direct": 3306, "proxy": port}
                for round_ in range(args.rounds):
                    order = list(targets) if round_ % 2 == 0 else list(targets)[::-1]
                    for name in order:
                        rate = mysqlslap(targets[name], args.clients, queries, query_file)
                        results.setdefault(f"mysql {name}", []).append(rate)
                        print(f"round {round_ + 1}: mysqlslap {name}: {rate:,.0f} q/s", flush=True)
            mysql(f"DROP DATABASE IF EXISTS {DATABASE}")
    subprocess.run([*psql, f"DROP DATABASE IF EXISTS {DATABASE}"], check=True)
    medians = {name: statistics.median(values) for name, values in results.items()}
    print("\nmedians:")
    for name, value in medians.items():
        print(
            f"  {name:18} {value:>10,.0f}   rounds: {', '.join(f'{v:,.0f}' for v in results[name])}"
        )
    for name in ("pg proxy", "pg traced"):
        if name in medians:
            print(f"  {name} / pg pgbouncer = {medians[name] / medians['pg pgbouncer']:.2f}")
    print(f"  pg pgbouncer / pg direct = {medians['pg pgbouncer'] / medians['pg direct']:.2f}")
    if "mysql proxy" in medians:
        print(
            f"  mysql proxy / mysql direct = {medians['mysql proxy'] / medians['mysql direct']:.2f}"
        )


if __name__ == "__main__":
    main()
