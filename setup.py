"""Compiles the stress engine's hot loop with mypyc where it can; everything else is pyproject.

The loop's modules are plain, strictly typed Python. Compiled, they take about a
third fewer client instructions per transaction (README: the harness against
pgbench), and every client microsecond is one the server, on the same cores, does
not get. Compiling is optional and never the only way: without mypyc, a C compiler
or Python's headers, with REDPACKET_PURE_PYTHON=1, or for an editable install
(where an edit to a module must take effect at once), the same modules run as
Python, and behave the same (tests/test_compiled.py holds the two to each other).
mypy is a build requirement: an offline build needs it at hand, as setuptools.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HOT_LOOP = [
    "redpacket/stress/event_loop.py",
    "redpacket/stress/loop_engine.py",
    "redpacket/stress/worker.py",
    "redpacket/stress/mysql_loop.py",
    "redpacket/stress/mysql_worker.py",
    "redpacket/stress/tally.py",
    "redpacket/stress/history.py",
    "redpacket/stress/histogram.py",
]
# The build environment has mypy but not the run-time dependencies: their types are Any
# there, which costs the compiled loop nothing (its hot calls are its own).
MYPY_OPTIONS = [
    "--config-file=",
    "--python-version=3.11",
    "--ignore-missing-imports",
    "--follow-imports=silent",
]


class AllOrNothing(build_ext):
    """The compiled loop whole, or not at all.

    mypyc makes one shared library and a small module per source file; a module
    whose library failed to build would still shadow its source and fail to import.
    So any failure removes every compiled module, and the wheel is pure Python.
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, a missing compiler
            print(f"redpacket: the stress loop stays pure Python ({exc})", file=sys.stderr)
            for extension in self.extensions:
                built = self.get_ext_fullpath(extension.name)
                if os.path.exists(built):
                    os.remove(built)
            self.extensions = []


def compiled_loop() -> list[Any]:
    commands = sys.argv[1:]
    editable = any(c.startswith("editable") or c == "develop" for c in commands)
    metadata_only = bool(commands) and all(c in ("egg_info", "dist_info") for c in commands[:1])
    if os.environ.get("REDPACKET_PURE_PYTHON") or editable or metadata_only:
        return []
    try:
        from mypyc.build import mypycify

        extensions = mypycify([*MYPY_OPTIONS, *HOT_LOOP], group_name="redpacket_loop")
    except (Exception, SystemExit) as exc:  # mypycify exits on a type error
        print(f"redpacket: the stress loop stays pure Python ({exc})", file=sys.stderr)
        return []
    return list(extensions)


if __name__ == "__main__":  # setuptools runs this file as __main__; tests read HOT_LOOP
    setup(ext_modules=compiled_loop(), cmdclass={"build_ext": AllOrNothing})
