"""PostgreSQL's isolationtester against ``redpacket spec``: same specs, same database.

Usage: python benchmarks/vs_isolationtester.py SPEC_DIR [--expected DIR] [--rounds 3]
           [--step-timeout 300] [--only NAME,...] [--results DIR]

SPEC_DIR holds isolationtester spec files (PostgreSQL's own ``src/test/isolation/specs``;
they are not part of this repository). For each spec, in a database of a lab of its
own (``redpacket_isocmp``, or $ISOCMP_LAB), dropped and created again before every run so that no
spec sees what another left behind:

1. the real isolationtester (PostgreSQL 15's, from postgresql-client) runs it, stdout
   and stderr into one file as pg_isolation_regress records them;
2. ``redpacket spec`` runs it;
3. the two outputs are compared byte for byte (and with DIR/NAME.out when --expected
   is given). A spec whose setup fails under the real tester, or that runs past
   --spec-limit, is listed as not runnable here; one whose steps fail (a feature
   PostgreSQL 15 lacks) is still compared: both tools must print the same errors.

Then the speed: the specs both tools ran identically, in interleaved rounds (each tool
going first in turn), as the real tester is run by pg_isolation_regress (one process
per spec) and as ``redpacket spec`` is run on many files (one process for all), plus
``redpacket spec`` one process per spec. Medians of wall time; the goal is <= 1.5x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from redpacket.database.backends import open_server
from redpacket.database.lab import Lab
from redpacket.engines.postgresql import libpq

ISOLATIONTESTER = "/usr/lib/postgresql/15/lib/pgxs/src/test/isolation/isolationtester"
LAB = "redpacket_isocmp"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def fresh_database(url: str) -> str:
    """Drop and create the comparison's spec database; its libpq connection string."""
    with open_server("url", url) as server:
        lab = Lab(server, os.environ.get("ISOCMP_LAB", LAB))
        lab.drop()
        return libpq(lab.spec_url())


def run_real(
    spec: Path, conninfo: str, env: dict[str, str], limit: float | None = None
) -> tuple[bytes, int, float]:
    started = time.perf_counter()
    with spec.open("rb") as stdin:
        try:
            done = subprocess.run(
                [ISOLATIONTESTER, conninfo], stdin=stdin, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=env, check=False, timeout=limit,
            )  # fmt: skip
        except subprocess.TimeoutExpired as stopped:
            output = stopped.stdout or b""
            return output + f"[killed after {limit:.0f} s]\n".encode(), -9, float(limit or 0)
    return done.stdout, done.returncode, time.perf_counter() - started


def redpacket_command(url: str, specs: list[Path], out: Path, timeout: str) -> list[str]:
    return [
        sys.executable, "-m", "redpacket", "--database-url", url, "--lab-database",
        os.environ.get("ISOCMP_LAB", LAB),
        "spec", *map(str, specs), "--output-dir", str(out), "--step-timeout", timeout,
    ]  # fmt: skip


def run_ours(url: str, spec: Path, out: Path, timeout: str) -> tuple[bytes, int, float]:
    started = time.perf_counter()
    done = subprocess.run(
        redpacket_command(url, [spec], out, timeout), capture_output=True, check=False
    )
    seconds = time.perf_counter() - started
    path = out / f"{spec.stem}.out"
    text = path.read_bytes() if path.exists() else b""
    if done.returncode == 2:
        text += b"[redpacket refused: " + done.stderr.strip() + b"]\n"
    return text, done.returncode, seconds


def first_difference(a: bytes, b: bytes) -> str:
    lines_a, lines_b = a.splitlines(), b.splitlines()
    for n, (x, y) in enumerate(zip(lines_a, lines_b, strict=False), start=1):
        if x != y:
            return f"line {n}: real {x[:70]!r} / ours {y[:70]!r}"
    return f"length: real {len(lines_a)} lines, ours {len(lines_b)} lines"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec_dir", type=Path)
    parser.add_argument("--expected", type=Path, help="PostgreSQL's expected/ directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step-timeout", default="300", help="PGISOLATIONTIMEOUT, seconds")
    parser.add_argument("--only", default="", help="comma-separated spec names")
    parser.add_argument(
        "--spec-limit",
        type=float,
        default=120.0,
        help="seconds a real run may take before it counts as not runnable",
    )
    parser.add_argument("--results", type=Path, default=Path("isocmp-results"))
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="skip the comparison; time the specs given (--only, --exclude)",
    )
    parser.add_argument("--exclude", default="", help="comma-separated spec names to leave out")
    parser.add_argument("--database-url", default=os.environ.get("REDPACKET_DATABASE_URL",
                                                                DEFAULT_URL))  # fmt: skip
    args = parser.parse_args()
    if not Path(ISOLATIONTESTER).exists():
        print(f"no isolationtester at {ISOLATIONTESTER} (apt-get install postgresql-client-15)")
        return 2
    url = args.database_url
    env = dict(os.environ, PGISOLATIONTIMEOUT=args.step_timeout)
    specs = sorted(args.spec_dir.glob("*.spec"))
    if args.only:
        wanted = set(args.only.split(","))
        specs = [s for s in specs if s.stem in wanted]
    if args.exclude:
        unwanted = set(args.exclude.split(","))
        specs = [s for s in specs if s.stem not in unwanted]
    if args.timing_only:
        args.results.mkdir(parents=True, exist_ok=True)
        timing(url, specs, env, args)
        return 0
    real_dir, ours_dir = args.results / "real", args.results / "ours"
    for folder in (real_dir, ours_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    same, differ, not_runnable, vs_expected = [], [], [], {"real": 0, "ours": 0, "files": 0}
    for spec in specs:
        real, real_status, _ = run_real(spec, fresh_database(url), env, args.spec_limit)
        (real_dir / f"{spec.stem}.out").write_bytes(real)
        if real_status < 0 or b"setup failed" in real:  # killed, or it could not even start
            not_runnable.append((spec.stem, (real.strip().splitlines() or [b"?"])[-1][:90]))
            print(f"{spec.stem:44} not runnable on this server (real tester: exit {real_status})")
            continue
        fresh_database(url)
        ours, _, _ = run_ours(url, spec, ours_dir, args.step_timeout)
        verdict = "same" if ours == real else "DIFFERS"
        (same if ours == real else differ).append(spec)
        note = "" if ours == real else "  " + first_difference(real, ours)
        if args.expected is not None and (args.expected / f"{spec.stem}.out").exists():
            expected = (args.expected / f"{spec.stem}.out").read_bytes()
            vs_expected["files"] += 1
            vs_expected["real"] += expected == real
            vs_expected["ours"] += expected == ours
        print(f"{spec.stem:44} {verdict}{note}")
    runnable = len(specs) - len(not_runnable)
    print(f"\n{len(same)} of {runnable} runnable specs byte-identical to the real isolationtester"
          f" ({len(not_runnable)} of {len(specs)} not runnable on this server)")  # fmt: skip
    if vs_expected["files"]:
        print(f"against --expected files: real {vs_expected['real']}, ours {vs_expected['ours']}"
              f" of {vs_expected['files']}")  # fmt: skip
    for name, last in not_runnable:
        print(f"  not runnable: {name}: {last.decode(errors='replace')}")
    if not same or args.rounds < 1:
        return 1 if differ else 0
    timing(url, same, env, args)
    return 1 if differ else 0


def timing(url: str, specs: list[Path], env: dict[str, str], args: argparse.Namespace) -> None:
    conninfo = fresh_database(url)
    out = args.results / "timing"
    out.mkdir(exist_ok=True)
    results: dict[str, list[float]] = {"isolationtester": [], "redpacket": [], "per-spec": []}

    def real_all() -> float:
        return sum(run_real(spec, conninfo, env)[2] for spec in specs)

    def ours_all() -> float:
        started = time.perf_counter()
        subprocess.run(redpacket_command(url, specs, out, args.step_timeout),
                       capture_output=True, check=False)  # fmt: skip
        return time.perf_counter() - started

    def ours_each() -> float:
        return sum(run_ours(url, spec, out, args.step_timeout)[2] for spec in specs)

    tools = [("isolationtester", real_all), ("redpacket", ours_all), ("per-spec", ours_each)]
    for round_number in range(args.rounds):
        order = tools[round_number % 3 :] + tools[: round_number % 3]
        for name, measure in order:
            results[name].append(measure())
        print(f"round {round_number + 1}: " + ", ".join(
            f"{name} {results[name][-1]:.2f} s" for name, _ in tools))  # fmt: skip
    real = statistics.median(results["isolationtester"])
    print(f"\n{len(specs)} specs, medians of {args.rounds} interleaved rounds:")
    for name, _ in tools:
        value = statistics.median(results[name])
        print(f"  {name:16} {value:8.2f} s   {value / real:5.2f}x the real isolationtester")
    print(f"  command: {' '.join(redpacket_command(url, specs[:1], out, args.step_timeout))}"
          " ... (all specs)")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
