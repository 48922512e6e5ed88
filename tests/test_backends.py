from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from redpacket.database import backends
from redpacket.database.backends import docker_problem, open_server, parse_backend
from redpacket.database.connect import connect
from redpacket.database.urls import mask, parse_url
from redpacket.errors import LabError
from tests.terminal import as_at_a_terminal


def test_url_backend_is_chosen_when_a_url_is_given(server: backends.Server) -> None:
    if server.backend != "url":
        pytest.skip("the test server did not come from a URL")
    raw = server.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with open_server("auto", raw) as chosen:
        assert chosen.backend == "url"
        with connect(chosen.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("not a url", "malformed database URL"),
        ("sqlite:///tmp/x.db", "unsupported database URL scheme 'sqlite'"),
        ("postgresql+asyncpg://u@h/db", "unsupported driver 'asyncpg'"),
        ("postgresql://u@h:port/db", "malformed database URL"),
    ],
)
def test_bad_urls_are_refused_with_the_problem_named(raw: str, problem: str) -> None:
    with pytest.raises(LabError, match=problem):
        parse_url(raw)


def test_password_is_masked() -> None:
    url = parse_url("postgresql://alice:s3cr3t@db.example:5433/shop")
    assert mask(url) == "postgresql://alice:***@db.example:5433/shop"
    assert "s3cr3t" not in repr(url)


def test_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(LabError, match="choose one of: auto, url, embedded, docker"):
        parse_backend("podman")


def test_url_backend_without_a_url_says_how_to_give_one() -> None:
    with pytest.raises(LabError, match="REDPACKET_DATABASE_URL"), open_server("url", None):
        pass


docker_extra = pytest.mark.skipif(
    importlib.util.find_spec("testcontainers") is None, reason="the docker extra is not installed"
)


@docker_extra
def test_docker_absence_is_detected_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    started = time.monotonic()
    problem = docker_problem()
    assert problem is not None
    assert "docker.sock" in problem
    assert time.monotonic() - started < 1.0


def test_without_the_docker_extra_docker_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers", None)  # as if never installed
    assert docker_problem() == "extra not installed (pip install 'redpacket[docker]')"


@docker_extra
def test_docker_backend_without_daemon_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(LabError, match="backend 'docker' is unavailable"), open_server("docker"):
        pass


@docker_extra
def test_auto_without_anything_lists_what_it_tried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    monkeypatch.setattr(backends, "embedded_available", lambda: False)
    with pytest.raises(LabError) as raised, open_server("auto"):
        pass
    message = str(raised.value)
    assert "url: none given" in message
    assert "embedded: extra not installed" in message
    assert "docker: no Docker daemon socket" in message
    assert "REDPACKET_DATABASE_URL" in message
    assert "\n" not in message


embedded = pytest.mark.skipif(
    not backends.embedded_available(), reason="the embedded extra is not installed"
)


@embedded
@pytest.mark.embedded
def test_embedded_server_runs_and_leaves_nothing_behind() -> None:
    with open_server("embedded") as server:
        assert server.backend == "embedded"
        with connect(server.url) as conn:
            row = conn.execute("SELECT current_setting('data_directory')").fetchone()
            assert row is not None
            pid_row = conn.execute("SELECT pg_backend_pid()").fetchone()
        data_dir = Path(str(row[0]))
        postmaster = _postmaster_of(data_dir)
        assert data_dir.exists()
    assert not data_dir.exists()
    assert not postmaster.is_running() or postmaster.status() == psutil.STATUS_ZOMBIE
    assert pid_row is not None


def _postmaster_of(data_dir: Path) -> psutil.Process:
    pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    return psutil.Process(pid)


EMBEDDED_CHILD = textwrap.dedent(
    """
    import sys, time
    from redpacket.database.backends import open_server
    from redpacket.database.connect import connect
    with open_server("embedded") as server:
        with connect(server.url) as conn:
            print(conn.execute("SHOW data_directory").fetchone()[0], flush=True)
        while True:
            time.sleep(0.05)
    """
)


@embedded
@pytest.mark.embedded
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_embedded_server_is_stopped_when_the_process_is_interrupted(sig: signal.Signals) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", EMBEDDED_CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ | {"PYTHONWARNINGS": "ignore"},
        preexec_fn=as_at_a_terminal,
    ) as child:
        assert child.stdout is not None
        data_dir = Path(child.stdout.readline().strip())
        postmaster = _postmaster_of(data_dir)
        child.send_signal(sig)
        child.wait(timeout=30)
    postmaster.wait(timeout=10)  # raises if the server outlives its owner
    assert not data_dir.exists()
