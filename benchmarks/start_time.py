"""How long the command line takes to start: ``--help``, ``--version``, ``strategies --json``.

Usage: python benchmarks/start_time.py [--runs 10] [--other PATH/TO/redpacket]

Each command runs as a whole process, as a user starts it (the console script in this
interpreter's environment), one warm-up run first, then ``--runs`` counted runs;
with ``--other`` (another tree's console script, e.g. an older checkout's venv) the
two run in turn, A B A B, and the ratio is taken pair by pair. Medians of wall time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["--version"], ["strategies", "--json"])


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--other", help="another redpacket console script to compare with")
    args = parser.parse_args()
    here = str(Path(sys.executable).with_name("redpacket"))
    if not Path(here).exists():
        here = shutil.which("redpacket") or here
    for words in COMMANDS:
        mine, theirs = [], []
        wall([here, *words])
        if args.other:
            wall([args.other, *words])
        for _ in range(args.runs):
            mine.append(wall([here, *words]))
            if args.other:
                theirs.append(wall([args.other, *words]))
        line = f"{' '.join(['redpacket', *words]):28} median {statistics.median(mine):.3f} s"
        if args.other:
            ratio = statistics.median(a / b for a, b in zip(mine, theirs, strict=True))
            line += f", other {statistics.median(theirs):.3f} s, ratio {ratio:.2f}"
        print(line + f"  ({here})")


if __name__ == "__main__":
    main()
