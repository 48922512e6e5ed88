"""libpq through ctypes gives what psycopg.pq gives: the yardstick is psycopg itself.

The spec sessions use pq_ctypes so that a ``redpacket spec`` process need not import
psycopg; the connection strings it makes and the refusals it words must be
psycopg's to the byte, and its connections must report what the server says.
"""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from redpacket.database.backends import Server
from redpacket.engines import pq_ctypes
from redpacket.engines.postgresql import conninfo, libpq

pytestmark = pytest.mark.skipif(
    not pq_ctypes.AVAILABLE, reason="the machine's libpq (libpq.so.5) does not load"
)

STRINGS = [
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://u:p%40ss@h:6432/db?sslmode=disable&application_name=x",
    "host=h port=5 dbname='my db' password='it\\'s' user=a\\\\b",
    "postgresql:///db?host=/run/postgresql",
    "",
]
EXTRA = [
    {},
    {"application_name": "redpacket spec", "connect_timeout": 10},
    {"options": "-c search_path=lab -c x=1", "application_name": "a'b\\c", "port": None},
    {"application_name": ""},
]
REFUSED = [
    "postgresql://u@h/db?bogus=1",
    "host=h bogus=1",
    "host='unterminated",
    "postgresql://u@[::1/db",
]


@pytest.mark.parametrize("text", STRINGS)
@pytest.mark.parametrize("extra", EXTRA, ids=lambda e: ",".join(e) or "none")
def test_connection_strings_are_made_as_psycopg_makes_them(text: str, extra: dict) -> None:  # type: ignore[type-arg]
    assert pq_ctypes.make_conninfo(text, **extra) == psycopg.conninfo.make_conninfo(text, **extra)
    assert pq_ctypes.conninfo_to_dict(text) == psycopg.conninfo.conninfo_to_dict(text)


@pytest.mark.parametrize("text", REFUSED)
def test_a_string_libpq_refuses_is_refused_in_psycopgs_words(text: str) -> None:
    with pytest.raises(psycopg.ProgrammingError) as theirs:
        psycopg.conninfo.conninfo_to_dict(text)
    with pytest.raises(ValueError, match=r".") as ours:
        pq_ctypes.conninfo_to_dict(text)
    assert str(ours.value) == str(theirs.value)


def test_a_connection_reports_what_the_server_says(server: Server) -> None:
    conn = pq_ctypes.PGconn.connect(conninfo(server.url, "redpacket pq test").encode())
    try:
        assert conn.status == pq_ctypes.ConnStatus.OK
        notices: list[bytes] = []
        conn.notice_handler = lambda res: notices.append(res.error_message)
        res = conn.exec_params(b"SELECT $1::int + 1 AS n, NULL AS none, pg_backend_pid()", [b"41"])
        assert res.status == pq_ctypes.ExecStatus.TUPLES_OK
        assert (res.fname(0), res.get_value(0, 0), res.get_value(0, 1)) == (b"n", b"42", None)
        assert int(res.get_value(0, 2) or 0) == conn.backend_pid
        failed = conn.exec_(b"SELECT 1/0")
        assert failed.status == pq_ctypes.ExecStatus.FATAL_ERROR
        assert failed.error_field(pq_ctypes.DiagnosticField.SQLSTATE) == b"22012"
        assert failed.error_field(pq_ctypes.DiagnosticField.MESSAGE_PRIMARY) == b"division by zero"
        conn.exec_(b"DO $$ BEGIN RAISE NOTICE 'hello %', 7; END $$")
        assert notices == [b"NOTICE:  hello 7\n"]
        conn.exec_(b"LISTEN redpacket_pq")
        conn.exec_(b"NOTIFY redpacket_pq, 'payload'")
        conn.consume_input()
        notify = conn.notifies()
        assert notify is not None
        assert (notify.relname, notify.extra, notify.be_pid) == (
            b"redpacket_pq", b"payload", conn.backend_pid,
        )  # fmt: skip
        conn.send_query(b"SELECT pg_sleep(30)")
        conn.get_cancel().cancel()
        while conn.is_busy():
            conn.consume_input()
        cancelled = conn.get_result()
        assert cancelled is not None
        assert cancelled.error_field(pq_ctypes.DiagnosticField.SQLSTATE) == b"57014"
        assert conn.parameter_status(b"server_encoding") == b"UTF8"
    finally:
        conn.finish()
    bad = pq_ctypes.PGconn.connect(libpq(server.url.set(port=1)).encode())
    assert bad.status == pq_ctypes.ConnStatus.BAD
    assert b"127.0.0.1" in bad.error_message or b"port 1" in bad.error_message
    bad.finish()


def test_a_spec_process_loads_no_psycopg(server: Server) -> None:
    """The second run, on a spec database already there and marked: libpq only."""
    from redpacket.database.urls import plain_url

    code = (
        "import sys; from redpacket.cli import main;"
        " code = main(sys.argv[1:]); print(code, 'psycopg' in sys.modules, file=sys.stderr)"
    )
    spec = "tests/specs/basics.spec"
    argv = ["--database-url", plain_url(server.url), "--lab-database", "redpacket_pq_test"]
    try:
        for _run in range(2):
            done = subprocess.run(
                [sys.executable, "-c", code, *argv, "spec", spec],
                capture_output=True, text=True, check=False, timeout=120,
            )  # fmt: skip
        assert done.stderr.split()[-2:] == ["0", "False"], done.stderr
    finally:
        subprocess.run([sys.executable, "-m", "redpacket", *argv, "drop"], check=False,
                       capture_output=True)  # fmt: skip
