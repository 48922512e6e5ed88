"""The loop engine of this tree against another checkout's, side by side.

Usage: python benchmarks/engine_before_after.py OTHER_TREE [--rounds 5] [--seconds 5]
       [--workers 8] [--strategies on_conflict,lock_first]

Runs ``redpacket stress --workload uniform`` from both trees in interleaved rounds
(each tree going first in turn) against the same server (REDPACKET_DATABASE_URL)
and prints the medians of throughput and of the whole command's CPU per request
(startup included, the same for both). A refactor of the engine must not cost
speed: this is how that is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def run(tree: Path, strategy: str, workers: int, seconds: float) -> tuple[float, float]:
    env = os.environ | {"PYTHONPATH": str(tree)}
    command = [
        sys.executable, "-m", "redpacket", "--lab-database", "redpacket_engine_bench", "stress",
        "-s", strategy, "-i", "read-committed", "--workload", "uniform", "-w", str(workers),
        "-n", "10000", "--duration", str(seconds), "--json",
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = json.loads(done.stdout)
    if not data["correct"] or data["failed"]:
        raise SystemExit(f"run from {tree} was not clean: {data}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data["throughput_per_s"], 1e6 * cpu / data["attempts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--strategies", default="on_conflict,lock_first")
    args = parser.parse_args()
    trees = {"this": HERE, "other": args.other.resolve()}
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_number in range(args.rounds):
        for strategy in args.strategies.split(","):
            order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
            for name in order:
                measured = run(trees[name], strategy, args.workers, args.seconds)
                figures.setdefault((strategy, name), []).append(measured)
    print(f"{args.rounds} interleaved rounds of {args.seconds:g} s, {args.workers} workers;"
          f" this = {trees['this']}, other = {trees['other']}")  # fmt: skip
    print(f"{'strategy':<12} {'tree':<6} {'median tps':>11} {'cpu µs/req':>11}  all tps")
    for (strategy, name), runs in figures.items():
        tps = [t for t, _ in runs]
        cpu = statistics.median(c for _, c in runs)
        listed = " ".join(f"{t:,.0f}" for t in tps)
        print(f"{strategy:<12} {name:<6} {statistics.median(tps):>11,.0f} {cpu:>11.1f}  {listed}")


if __name__ == "__main__":
    main()
