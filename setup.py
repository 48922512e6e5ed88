"""Compiles the stress engine's hot loop where it can; everything else is pyproject.

The loop's modules are plain, strictly typed Python. Compiled, they take about a
third fewer client instructions per transaction (README: the harness against
pgbench), and every client microsecond is one the server, on the same cores, does
not get. Compiling is optional and never the only way: without mypyc, a C compiler
or Python's headers, with REDPACKET_PURE_PYTHON=1, or for an editable install
(where an edit to a module must take effect at once), the same modules run as
Python, and behave the same (tests/test_compiled.py holds the two to each other).
mypy is a build requirement: an offline build needs it at hand, as setuptools.

The libpq C wire (redpacket/stress/_libpq_pipe.c, what a worker's connection sends
and reads, one call a batch) is built wherever libpq's headers are found, editable
installs included: it has no Python source an edit could go stale against. Without
it the workers use the same wire over psycopg (redpacket/stress/pipes.py), with the
same results (tests/test_pipes.py holds the two to each other). The MySQL wire
(redpacket/engines/_mysql_wire.c) needs no client library at all, so it is built
wherever a C compiler is; its twin is redpacket/engines/mysql_wire.py
(tests/test_mysql_wire.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HOT_LOOP = [
    "redpacket/stress/event_loop.py",
    "redpacket/stress/loop_engine.py",
    "redpacket/stress/worker.py",
    "redpacket/stress/pipes.py",
    "redpacket/stress/mysql_loop.py",
    "redpacket/stress/mysql_worker.py",
    "redpacket/stress/tally.py",
    "redpacket/stress/history.py",
    "redpacket/stress/histogram.py",
    "redpacket/strategies/walk.py",
]
# The build environment has mypy but not the run-time dependencies: their types are Any
# there, which costs the compiled loop nothing (its hot calls are its own).
MYPY_OPTIONS = [
    "--config-file=",
    "--python-version=3.11",
    "--ignore-missing-imports",
    "--follow-imports=silent",
]


WIRE = "redpacket.stress._libpq_pipe"
MYSQL_WIRE = "redpacket.engines._mysql_wire"
WIRES = (WIRE, MYSQL_WIRE)  # each has a Python twin of its own: built or left out alone


class AllOrNothing(build_ext):
    """The compiled loop whole, or not at all; the C wire on its own.

    mypyc makes one shared library and a small module per source file; a module
    whose library failed to build would still shadow its source and fail to import.
    So any failure removes every compiled module, and the loop is pure Python. The C
    wire is one module with a fallback of its own: if it fails, only it is left out.
    """

    def build_extension(self, ext: Any) -> None:
        if ext.name not in WIRES:
            super().build_extension(ext)
            return
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError, a missing compiler
            print(f"redpacket: no C build of {ext.name}, its Python twin serves ({exc})",
                  file=sys.stderr)  # fmt: skip
            built = self.get_ext_fullpath(ext.name)
            if os.path.exists(built):
                os.remove(built)

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, a missing compiler
            print(f"redpacket: the stress loop stays pure Python ({exc})", file=sys.stderr)
            for extension in self.extensions:
                built = self.get_ext_fullpath(extension.name)
                if extension.name not in WIRES and os.path.exists(built):
                    os.remove(built)
            self.extensions = [e for e in self.extensions if e.name in WIRES]


def _libpq_paths() -> tuple[str, str] | None:
    """libpq's header and library directories, from pg_config or pkg-config; None: not here."""
    if shutil.which("pg_config"):
        found = [
            subprocess.run(["pg_config", flag], capture_output=True, text=True).stdout.strip()
            for flag in ("--includedir", "--libdir")
        ]
        if os.path.exists(os.path.join(found[0], "libpq-fe.h")):
            return found[0], found[1]
    if shutil.which("pkg-config"):
        done = subprocess.run(
            ["pkg-config", "--cflags-only-I", "--libs-only-L", "libpq"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode == 0:
            flags = done.stdout.split()
            include = next((f[2:] for f in flags if f.startswith("-I")), "/usr/include")
            libdir = next((f[2:] for f in flags if f.startswith("-L")), "")
            if os.path.exists(os.path.join(include, "libpq-fe.h")):
                return include, libdir
    return None


def libpq_wire() -> list[Any]:
    if os.environ.get("REDPACKET_PURE_PYTHON") or not sys.argv[1:]:
        return []
    if all(c in ("egg_info", "dist_info") for c in sys.argv[1:2]):
        return []
    paths = _libpq_paths()
    if paths is None:
        print("redpacket: no libpq headers, the loop uses psycopg's wire", file=sys.stderr)
        return []
    include, libdir = paths
    return [
        Extension(
            WIRE,
            sources=["redpacket/stress/_libpq_pipe.c"],
            include_dirs=[include],
            library_dirs=[libdir] if libdir else [],
            runtime_library_dirs=[libdir] if libdir else [],
            libraries=["pq"],
        )
    ]


def mysql_wire() -> list[Any]:
    """MySQL's protocol needs no client library: Python's headers and a C compiler do."""
    commands = sys.argv[1:]
    if os.environ.get("REDPACKET_PURE_PYTHON") or not commands:
        return []
    if all(c in ("egg_info", "dist_info") for c in commands[:1]):
        return []
    return [Extension(MYSQL_WIRE, sources=["redpacket/engines/_mysql_wire.c"])]


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
    setup(
        ext_modules=libpq_wire() + mysql_wire() + compiled_loop(),
        cmdclass={"build_ext": AllOrNothing},
    )
