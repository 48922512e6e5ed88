"""The lab's MySQL wire, in C and in Python, gives the server's own answers.

Each scenario runs on the real MariaDB once per wire, and the transcripts must be
equal; each also asserts what the server really said (rows, numbers, SQLSTATEs),
so two wires wrong alike fail too. Where a C compiler is (as on every machine of
this project's kind), the C wire must have been built: a build that silently fell
back would leave the fast path untested.
"""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from redpacket.database.backends import Server
from redpacket.database.connect import connect
from redpacket.database.lab import Lab, Schema
from redpacket.engines import mysql_wire
from redpacket.engines.mysql import bind, connect_options, template
from redpacket.engines.mysql_drivers import protocol_connect
from redpacket.engines.mysql_wire import ERR, MORE_RESULTS, OK, ROWS, PyWire
from redpacket.errors import LabError

Wire = Callable[[int, bool], Any]


def wires() -> list[Wire]:
    found: list[Wire] = [PyWire]
    c_wire = mysql_wire._c_wire()
    if c_wire is not None:
        found.append(c_wire)
    return found


def test_the_c_wire_is_built_wherever_a_c_compiler_is() -> None:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) here: the MySQL wire is Python's")
    assert mysql_wire._c_wire() is not None, "a compiler is here, but _mysql_wire was not built"


def test_the_wire_is_chosen_by_redpacket_mysql_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mysql_wire.ENV, "python")
    assert mysql_wire.wire_class() is PyWire
    assert mysql_wire.wire_build() == "MySQL Python wire"
    monkeypatch.setenv(mysql_wire.ENV, "smoke signals")
    with pytest.raises(LabError, match="REDPACKET_MYSQL_WIRE is 'c' or 'python'"):
        mysql_wire.wire_class()


@pytest.fixture
def options(mysql_lab: Lab) -> dict[str, Any]:
    return connect_options(mysql_lab.url_of(Schema.UNCONSTRAINED))


@pytest.fixture(params=[w.__name__ for w in wires()])
def session(request: pytest.FixtureRequest, options: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    wire_of = {w.__name__: w for w in wires()}[request.param]
    conn, fd, deprecate_eof = protocol_connect(options, multi=True)
    try:
        yield conn, wire_of(fd, deprecate_eof)
    finally:
        conn.close()


def ask(wire: Any, sql: str, typed: bool = False) -> list[tuple[Any, ...]]:
    """Every answer the query gets, as the wire gives them."""
    wire.send(sql.encode())
    answers = [wire.read(typed)]
    while answers[-1][0] != ERR and answers[-1][3] & MORE_RESULTS:
        answers.append(wire.read(typed))
    return [tuple(a) for a in answers]


def transcript(options: dict[str, Any], wire_of: Wire, scenario: Callable[[Any], Any]) -> Any:
    conn, fd, deprecate_eof = protocol_connect(options, multi=True)
    try:
        return scenario(wire_of(fd, deprecate_eof))
    finally:
        conn.close()


def both_agree(options: dict[str, Any], scenario: Callable[[Any], Any]) -> Any:
    results = [transcript(options, w, scenario) for w in wires()]
    assert all(r == results[0] for r in results), results
    return results[0]


def test_rows_come_as_text_or_typed(options: dict[str, Any]) -> None:
    sql = "SELECT 42 AS n, NULL AS nothing, 8.88 AS amount, 'héllo' AS word, -7 AS neg"

    def scenario(wire: Any) -> Any:
        return ask(wire, sql), ask(wire, sql, typed=True)

    text, typed = both_agree(options, scenario)
    ((kind, names, rows, status, _),) = text
    assert kind == ROWS
    assert names == (b"n", b"nothing", b"amount", b"word", b"neg")
    assert rows == [(b"42", None, b"8.88", "héllo".encode(), b"-7")]
    assert not status & MORE_RESULTS
    assert typed[0][2] == [(42, None, "8.88", "héllo", -7)]
    assert Decimal(typed[0][2][0][2]) == Decimal("8.88")


def test_a_write_says_what_it_changed(options: dict[str, Any]) -> None:
    def scenario(wire: Any) -> Any:
        return (
            ask(wire, "CREATE TEMPORARY TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
            + ask(wire, "INSERT INTO t (v) VALUES (1), (2), (3)")
            + ask(wire, "UPDATE t SET v = v + 1 WHERE v >= 2")
            + ask(wire, "DELETE FROM t WHERE v = 99")
            + ask(wire, "SELECT id, v FROM t ORDER BY id", typed=True)
        )

    created, inserted, updated, deleted, selected = both_agree(options, scenario)
    assert created[0] == OK
    assert (inserted[0], inserted[1], inserted[2]) == (OK, 3, 1)  # the first id of the three
    assert (updated[0], updated[1]) == (OK, 2)
    assert (deleted[0], deleted[1]) == (OK, 0)
    assert selected[2] == [(1, 1), (2, 3), (3, 4)]


def test_an_error_carries_the_servers_number_and_sqlstate(options: dict[str, Any]) -> None:
    def scenario(wire: Any) -> Any:
        return (
            ask(wire, "SELECT * FROM no_such_table") + ask(wire, "SELEC 1") + ask(wire, "SELECT 1")
        )

    missing, syntax, after = both_agree(options, scenario)
    assert missing[:3] == (ERR, 1146, "42S02")
    assert "no_such_table" in missing[3]
    assert syntax[:3] == (ERR, 1064, "42000")
    assert after[2] == [(b"1",)]  # the session goes on after an error


def test_several_statements_answer_one_after_another(options: dict[str, Any]) -> None:
    def scenario(wire: Any) -> Any:
        return ask(wire, "SELECT 1; DO 0; SELECT 'two'; SELECT * FROM nope; SELECT 3")

    first, done, second, error = both_agree(options, scenario)
    assert first[0] == ROWS
    assert first[3] & MORE_RESULTS
    assert done[0] == OK
    assert done[3] & MORE_RESULTS
    assert second[2] == [(b"two",)]
    assert second[3] & MORE_RESULTS
    assert error[:3] == (ERR, 1146, "42S02")  # the server stops at the error: no SELECT 3


def test_big_answers_cross_the_read_buffer(options: dict[str, Any]) -> None:
    sql = (
        "SELECT CAST(seq AS SIGNED), REPEAT('x', 300) FROM seq_1_to_5000"
        " UNION ALL SELECT 0, REPEAT('y', 200000)"
    )

    def scenario(wire: Any) -> Any:
        (answer,) = ask(wire, sql, typed=True)
        return answer[0], len(answer[2]), answer[2][0], len(answer[2][-1][1])

    kind, count, first, longest = both_agree(options, scenario)
    assert (kind, count, first, longest) == (ROWS, 5001, (1, "x" * 300), 200000)


def test_a_killed_session_is_lost_not_an_answer(
    options: dict[str, Any], mysql_server: Server
) -> None:
    def scenario(wire: Any) -> Any:
        (pid,) = ask(wire, "SELECT CONNECTION_ID()", typed=True)[0][2][0]
        with connect(mysql_server.url, autocommit=True) as observer:
            observer.cursor().execute(f"KILL CONNECTION {int(pid)}")
        seen = []
        for _ in range(3):  # the server may say why before it closes: 1927, then nothing
            try:
                wire.send(b"SELECT 1")
                answer = wire.read()
            except ConnectionError:
                seen.append("lost")
                break
            seen.append(answer[:2])
        return seen

    seen = both_agree(options, scenario)
    assert seen[-1] == "lost"
    assert all(s == (ERR, 1927) for s in seen[:-1])


def test_values_bound_into_a_statement_reach_the_server_as_written(
    session: tuple[Any, Any],
) -> None:
    """What the stress loop sends: a name twice, a literal ``%``, a quote, a backslash."""
    conn, wire = session
    sql = (
        "SELECT %(word)s AS w, %(n)s + 1 AS n, %(word)s = %(again)s AS same,"
        " 'a%%b' LIKE 'a%%' AS pct, %(amount)s AS amount"
    )
    query, names = template(sql)
    assert names == ("word", "n", "word", "again", "amount")
    params = {"word": "it's \\ 100%", "n": 41, "again": "it's \\ 100%", "amount": Decimal("8.88")}
    bound = bind(conn, sql, params)
    assert query.startswith(b"SELECT %s AS w, %s + 1 AS n")
    assert bound == (
        b"SELECT 'it\\'s \\\\ 100%' AS w, 41 + 1 AS n, 'it\\'s \\\\ 100%' = 'it\\'s \\\\ 100%'"
        b" AS same, 'a%b' LIKE 'a%' AS pct, 8.88 AS amount"
    )
    ((kind, _names, rows, _status, _warnings),) = ask(wire, bound.decode(), typed=True)
    assert kind == ROWS
    assert rows == [("it's \\ 100%", 42, 1, 1, "8.88")]
