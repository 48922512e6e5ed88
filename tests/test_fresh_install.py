"""A newcomer's machine: the default install needs no MariaDB client headers, and the
MySQL tests then run on it (not skip).

The install runs on a PATH where ``mariadb_config`` and ``mysql_config`` fail and
``pkg-config`` finds no MariaDB or MySQL library, so it cannot pass by accident on
a machine where someone installed the headers: a dependency that builds against
them (mysqlclient) would fail the install here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from redpacket.database.backends import Server
from redpacket.database.urls import plain_url

ROOT = Path(__file__).resolve().parent.parent
HOT_STRESS = "test_hot_stress_reproduces_the_seed_bug_on_innodb"
HIDDEN = ("mariadb_config", "mysql_config")
PKG_CONFIG = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in *mariadb*|*mysql*) echo "Package $arg was not found" >&2; exit 1;; esac
done
exec {real} "$@"
"""


def _no_mariadb_path(folder: Path) -> str:
    folder.mkdir()
    for name in HIDDEN:
        script = folder / name
        script.write_text("#!/bin/sh\necho 'not on this machine' >&2\nexit 127\n")
        script.chmod(0o755)
    real = shutil.which("pkg-config")
    if real is not None:
        script = folder / "pkg-config"
        script.write_text(PKG_CONFIG.format(real=real))
        script.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


@pytest.mark.slow
def test_the_default_install_needs_no_mariadb_headers_and_runs_the_mysql_tests(
    tmp_path: Path, mysql_server: Server
) -> None:
    mysql_dsn = plain_url(mysql_server.url)
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "build", "*.egg-info", ".venv*")
    for name in ("redpacket", "migrations", "tests"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env = dict(
        os.environ, PATH=_no_mariadb_path(tmp_path / "bin"), PIP_DISABLE_PIP_VERSION_CHECK="1"
    )
    for name in HIDDEN:
        assert subprocess.run([name], env=env, capture_output=True).returncode != 0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    done = subprocess.run(
        [python, "-m", "pip", "install", "-q", "-e", ".[dev]"],
        cwd=source, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    found = subprocess.run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('MySQLdb') is None,"
         " u.find_spec('pymysql') is not None)"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert found.stdout.split() == ["True", "True"]  # PyMySQL serves, no mysqlclient came
    tests = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/test_mysql_wire.py", f"tests/test_mysql.py::{HOT_STRESS}", "-rs"],
        cwd=source, env=dict(env, REDPACKET_TEST_MYSQL_DSN=mysql_dsn),
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    said = tests.stdout[-3000:] + tests.stderr[-2000:]
    assert tests.returncode == 0, said
    assert " passed" in said, said
    assert "skipped" not in said, said
