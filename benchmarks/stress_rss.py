"""Peak memory of a long uniform stress run (goal: under 200 MB for 1,000,000 requests).

Usage: python benchmarks/stress_rss.py [ATTEMPTS] [PROCESSES]
Runs `redpacket stress` as a child process against REDPACKET_DATABASE_URL (or the
default backend) and reports the child's peak RSS, which covers the worker
processes it spawns, from the kernel's own accounting (getrusage).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def main() -> None:
    attempts = sys.argv[1] if len(sys.argv) > 1 else "1000000"
    processes = sys.argv[2] if len(sys.argv) > 2 else "1"
    workers = str(8 * int(processes))
    command = [
        sys.executable, "-m", "redpacket", "--lab-database", "redpacket_rss", "stress",
        "-s", "on_conflict", "--workload", "uniform", "--attempts", attempts, "-n", "10000",
        "-w", workers, "-p", processes, "--json",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    subprocess.run([*command[:5], "drop"], capture_output=True, check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr.strip() or f"exit status {result.returncode}")
    data = json.loads(result.stdout)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"{data['attempts']:,} requests in {data['elapsed_s']} s"
        f" ({data['throughput_per_s']:,.0f}/s), {processes} process(es):"
        f" peak RSS {peak_mb:.0f} MB (largest single process)"
    )


if __name__ == "__main__":
    main()
