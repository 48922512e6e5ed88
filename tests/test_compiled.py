"""The stress loop compiled with mypyc (as a wheel builds it) behaves as the pure-Python one.

The rest of the suite runs the loop as Python (an editable install never compiles:
an edit must take effect at once). Here the loop's modules are compiled exactly as
setup.py compiles them, into a copy of the package, and a subprocess with that copy
first on its path runs the runs that matter: the seed bug reproduced, a fix holding
under hot load with retries, a uniform run across two processes (its tallies and
histories pickled between them), and sessions killed mid-transaction, on each engine
reachable.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from redpacket.database.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
SETUP = runpy.run_path(str(ROOT / "setup.py"))  # HOT_LOOP, MYPY_OPTIONS; no build
pytestmark = [pytest.mark.slow, pytest.mark.stress]

RUNS = """
import json, sys
from redpacket.database.url import make_url
import redpacket.stress.worker, redpacket.stress.event_loop, redpacket.stress.mysql_loop
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab
from redpacket.isolation import Isolation
from redpacket.strategies import STRATEGIES
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.runner import run_stress

modules = (redpacket.stress.worker, redpacket.stress.event_loop, redpacket.stress.mysql_loop)
url, name = sys.argv[1], sys.argv[2]
from redpacket.stress.fast import loop_build
from redpacket.stress.pipes import pipe_build
found = {"compiled": [m.__file__.endswith(".so") for m in modules], "build": loop_build(),
         "wire": pipe_build(), "runs": {}}
with open_server("url", url) as server:
    lab = Lab(server, name)
    plans = {
        "seed": StressPlan(STRATEGIES["seed"], Isolation.REPEATABLE_READ, workers=8, orders=40),
        "fix": StressPlan(STRATEGIES["lock_first"], Isolation.SERIALIZABLE, workers=8,
                          orders=40, retries=30),
        "uniform": StressPlan(STRATEGIES["on_conflict"], Isolation.READ_COMMITTED, workers=8,
                              orders=200, workload=Workload.UNIFORM, attempts=2000,
                              processes=2),
        # a second of requests: at 40 kills/s a compiled loop done in 80 ms killed none
        "kills": StressPlan(STRATEGIES["on_conflict"], Isolation.READ_COMMITTED, workers=8,
                            orders=100, workload=Workload.UNIFORM, duration_s=1.0,
                            retries=10, kill_rate=40.0),
    }
    for label, plan in plans.items():
        result = run_stress(lab, plan)
        found["runs"][label] = {
            "error": result.error,
            "attempts": result.tally.attempts,
            "granted": result.tally.granted,
            "failed": sum(result.tally.failed.values()),
            "duplicates": result.check.duplicate_orders if result.check else None,
            "history_ok": bool(result.history_check and result.history_check.ok),
            "history": len(result.tally.history),
            "latencies": result.tally.latency.total,
            "killed": result.backends_killed,
            "lost": result.tally.connections_lost,
        }
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def compiled_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the loop is installed as pure Python here")
    folder = tmp_path_factory.mktemp("compiled")
    ignore = shutil.ignore_patterns("__pycache__", "*.so")
    shutil.copytree(ROOT / "redpacket", folder / "redpacket", ignore=ignore)
    shutil.copytree(ROOT / "migrations", folder / "redpacket" / "migrations", ignore=ignore)
    done = subprocess.run(
        [sys.executable, "-m", "mypyc", *SETUP["MYPY_OPTIONS"], *SETUP["HOT_LOOP"]],
        cwd=folder, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for wire in (ROOT / "redpacket" / "stress").glob("_libpq_pipe*.so"):  # as a wheel has it
        shutil.copy(wire, folder / "redpacket" / "stress" / wire.name)
    return folder


def run_compiled(folder: Path, lab: Lab) -> dict[str, object]:
    url = lab.server.url.render_as_string(hide_password=False)
    env = dict(os.environ, PYTHONPATH=str(folder))
    done = subprocess.run(
        [sys.executable, "-c", RUNS, url, lab.name],
        cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def hold_to_the_pure_loop(found: dict[str, object], orders: int = 40) -> None:
    assert found["compiled"] == [True, True, True]
    assert found["build"] == "compiled (mypyc)"
    c_wire_here = bool(list((ROOT / "redpacket" / "stress").glob("_libpq_pipe*.so")))
    assert found["wire"] == ("libpq C wire" if c_wire_here else "psycopg wire")
    runs = found["runs"]
    assert isinstance(runs, dict)
    seed, fix, uniform = runs["seed"], runs["fix"], runs["uniform"]
    assert seed["error"] is None
    assert seed["duplicates"] >= orders * 0.9  # the bug, compiled or not
    assert seed["history"] == seed["latencies"] == 8 * orders
    assert (fix["granted"], fix["failed"], fix["duplicates"]) == (orders, 0, 0)
    assert fix["history_ok"]
    assert (uniform["attempts"], uniform["failed"], uniform["duplicates"]) == (2000, 0, 0)
    assert uniform["history"] == uniform["latencies"] == 2000
    assert uniform["history_ok"]
    kills = runs["kills"]  # sessions killed mid-transaction: nothing lost, nothing doubled
    assert (kills["error"], kills["duplicates"], kills["failed"]) == (None, 0, 0)
    assert kills["killed"] > 0
    assert kills["lost"] > 0
    assert kills["history_ok"]


def test_the_compiled_loop_on_postgresql(compiled_package: Path, lab: Lab) -> None:
    hold_to_the_pure_loop(run_compiled(compiled_package, lab))


def test_the_compiled_loop_on_innodb(compiled_package: Path, mysql_lab: Lab) -> None:
    hold_to_the_pure_loop(run_compiled(compiled_package, mysql_lab))


def test_an_editable_install_leaves_no_compiled_module_beside_the_sources() -> None:
    """A compiled module beside its Python source would shadow every later edit of it.

    (The C wire is built in place: its source is C, there is nothing for it to shadow.)
    """
    from redpacket.stress.fast import loop_build

    shadowing = [
        built for built in (ROOT / "redpacket").rglob("*.so")
        if built.with_name(built.name.split(".")[0] + ".py").exists()
    ]  # fmt: skip
    assert not shadowing
    assert loop_build() == "pure Python"


def test_without_a_working_c_compiler_the_wheel_is_pure_python(tmp_path: Path) -> None:
    """A compiler that fails on mypyc's shared library and on the C wire alone: the
    small per-module extensions would build, then shadow their sources and fail to
    import. None may ship; the wheel must be the pure-Python package, which runs on
    psycopg's wire and the Python MySQL wire."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "build", "*.egg-info")
    for name in ("redpacket", "migrations"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    broken = tmp_path / "bin"
    broken.mkdir()
    for name in ("gcc", "cc", "x86_64-linux-gnu-gcc", "aarch64-linux-gnu-gcc"):
        script = broken / name
        fail = 'case "$*" in *__native*|*_libpq_pipe.c*|*_mysql_wire.c*) exit 1;; esac'
        script.write_text(f'#!/bin/sh\n{fail}\nexec gcc-real "$@"\n')
        script.chmod(0o755)
    real = shutil.which("gcc")
    if real is None:
        pytest.skip("no gcc to break")
    (broken / "gcc-real").symlink_to(real)
    env = dict(os.environ, PATH=f"{broken}:{os.environ['PATH']}")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", ".", "--no-deps", "-w", str(tmp_path / "w")],
        cwd=source, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = (tmp_path / "w").glob("redpacket-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "redpacket/stress/worker.py" in names
    assert not [name for name in names if name.endswith(".so")]
    said = done.stderr + done.stdout
    assert "the stress loop stays pure Python" in said, said[-3000:]
    if SETUP["_libpq_paths"]() is not None:
        assert "no C build of redpacket.stress._libpq_pipe" in said, said[-3000:]
    assert "no C build of redpacket.engines._mysql_wire" in said, said[-3000:]
