"""Where a MySQL-family server comes from when no URL is given: a private one, or Docker.

No MySQL server ships as a wheel, so the nearest thing to the embedded PostgreSQL
is a private server started from a locally installed ``mariadbd`` (or ``mysqld``)
in a temporary folder, on a free port, stopped and deleted on exit (the way
pytest-mysql does it). With Docker, a ``mariadb`` container through testcontainers.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from redpacket.database.backends import Server, _exit_on_termination, docker_problem
from redpacket.database.urls import parse_url
from redpacket.errors import LabError

DOCKER_IMAGE = "mariadb:10.11"
START_TIMEOUT_S = 30.0
SEARCHED = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin")


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or next(
            (f"{folder}/{name}" for folder in SEARCHED if os.access(f"{folder}/{name}", os.X_OK)),
            None,
        )
        if found:
            return found
    return None


def local_problem() -> str | None:
    """Why no private server can be started here, or None when it can."""
    if _binary("mariadbd", "mysqld") is None:
        return "no mariadbd or mysqld binary found"
    if (
        _binary("mariadb-install-db", "mysql_install_db") is None
        and _binary("mariadbd") is not None
    ):
        return "mariadbd found, but not mariadb-install-db to create its data folder"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _initialise(server: str, datadir: Path, user: str) -> None:
    install = _binary("mariadb-install-db", "mysql_install_db")
    if install is not None:
        command = [install, "--no-defaults", f"--datadir={datadir}", f"--user={user}",
                   "--auth-root-authentication-method=normal", "--skip-test-db"]  # fmt: skip
    else:  # MySQL 8: the server initialises its own data folder
        command = [server, "--no-defaults", "--initialize-insecure", f"--datadir={datadir}",
                   f"--user={user}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"cannot create a private MySQL data folder: {tail[0]}")


@contextlib.contextmanager
def private_server() -> Iterator[Server]:
    """A throw-away server in a temporary folder, stopped and deleted when the block ends."""
    problem = local_problem()
    if problem:
        raise LabError(f"backend 'mysql-local' is unavailable: {problem}")
    binary = _binary("mariadbd", "mysqld")
    assert binary is not None
    folder = Path(tempfile.mkdtemp(prefix="redpacket-mysql-"))
    user = getpass.getuser()
    port = _free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        with _exit_on_termination():
            _initialise(binary, folder / "data", user)
            # Its own tmpdir: servers sharing /tmp lost each other's on-disk temporary
            # tables (error 6, "Error on delete of '/tmp/#sql-temptable-...'").
            (folder / "tmp").mkdir()
            process = subprocess.Popen(
                [binary, "--no-defaults", f"--datadir={folder / 'data'}", f"--port={port}",
                 f"--tmpdir={folder / 'tmp'}",
                 "--bind-address=127.0.0.1", f"--socket={folder / 'mysql.sock'}",
                 f"--pid-file={folder / 'mysqld.pid'}", f"--user={user}",
                 "--innodb-buffer-pool-size=64M", "--skip-log-bin", "--max-connections=300"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            server = Server("mysql-local", parse_url(f"mysql://root@127.0.0.1:{port}/"))
            _wait_until_ready(server, process)
            yield server
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_ready(server: Server, process: subprocess.Popen[bytes]) -> None:
    from redpacket.database.connect import connect

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise LabError(
                f"the private MySQL server exited at start (status {process.returncode})"
            )
        try:
            with connect(server.url, autocommit=True):
                return
        except LabError:
            if time.monotonic() > deadline:
                raise LabError(
                    f"the private MySQL server did not answer within {START_TIMEOUT_S:g} s"
                ) from None
            time.sleep(0.1)  # polling a server that is starting; nothing races here


@contextlib.contextmanager
def docker_server() -> Iterator[Server]:
    problem = docker_problem()
    if problem:
        raise LabError(f"backend 'mysql-docker' is unavailable: {problem}")
    try:  # testcontainers >= 4.13 moved the module; the old path warns
        from testcontainers.community.mysql import MySqlContainer
    except ImportError:  # pragma: no cover - older testcontainers
        from testcontainers.mysql import MySqlContainer
    container = MySqlContainer(DOCKER_IMAGE, root_password="redpacket")
    with _exit_on_termination():
        container.start()
        try:
            port = container.get_exposed_port(3306)
            host = container.get_container_host_ip()
            yield Server("mysql-docker", parse_url(f"mysql://root:redpacket@{host}:{port}/"))
        finally:
            container.stop()


def mysql_problem() -> str | None:
    """Why neither a private server nor Docker can give a MySQL-family server, or None."""
    local = local_problem()
    if local is None:
        return None
    docker = docker_problem()
    return None if docker is None else f"mysql-local: {local}; mysql-docker: {docker}"
