"""Passwords through the proxy on PostgreSQL: SCRAM-SHA-256 and md5, relayed unread.

The machine's server trusts loopback, so this starts a private one (``initdb`` from the
machine's binaries, as the postgres user when the tests run as root) whose pg_hba asks
one role for SCRAM and another for md5; stopped and removed after the module.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from redpacket.database.url import URL, make_url
from redpacket.engines.postgresql import ENGINE, conninfo
from redpacket.wire.proxy import Proxy

BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
LOGS: dict[int, Path] = {}  # port -> the private server's folder (its log)
HBA = """\
local all all trust
host all scram_user 127.0.0.1/32 scram-sha-256
host all md5_user 127.0.0.1/32 md5
host all all 127.0.0.1/32 trust
"""


def _as_owner(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as the postgres user, then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def password_server() -> Iterator[URL]:
    if not BINARIES:
        pytest.skip("no initdb in /usr/lib/postgresql/*/bin (PostgreSQL's server binaries)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: initdb would refuse")
    bindir = Path(BINARIES[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="redpacket-auth-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = _free_port()
    subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                              "--auth=trust", "-N"]), check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    (data / "pg_hba.conf").write_text(HBA, encoding="utf-8")
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
               " -c log_connections=on")  # fmt: skip
    LOGS[port] = folder
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    started = subprocess.run(_as_owner([*pg_ctl, "-o", options, "-l", str(folder / "log"),
                                        "start"]), capture_output=True, text=True,
                             timeout=90)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        url = make_url(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute("CREATE ROLE scram_user LOGIN PASSWORD 's3cret'")
            conn.execute("SET password_encryption = 'md5'")
            conn.execute("CREATE ROLE md5_user LOGIN PASSWORD 's3cret'")
        yield url
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(_as_owner([*pg_ctl, "-m", "immediate", "stop"]),
                           capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("user", "method"), [("scram_user", "scram-sha-256"),
                                              ("md5_user", "md5")])  # fmt: skip
def test_a_password_is_relayed_unread(password_server: URL, user: str, method: str) -> None:
    proxy = Proxy(password_server, ENGINE.wire_protocol()).start()
    try:
        through = proxy.url().set(username=user, password="s3cret")
        with psycopg.connect(conninfo(through)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (user,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(conninfo(proxy.url().set(username=user, password="wrong")))
        log = (LOGS[int(password_server.port or 0)] / "log").read_text(encoding="utf-8")
        said = f'connection authenticated: identity="{user}" method={method}'
        assert said in log  # the server's own account of how the client proved it
    finally:
        proxy.close()


def test_the_server_asked_for_the_password_it_was_told_to(password_server: URL) -> None:
    """Without the proxy, the same roles are refused without a password: the hba rules above
    are what the proxy relayed, not a trust the test forgot."""
    for user in ("scram_user", "md5_user"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(conninfo(password_server.set(username=user)) + " password=''")
