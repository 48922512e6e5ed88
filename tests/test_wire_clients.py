"""Other languages' clients through the proxy: node-postgres, mysql2, pgjdbc, MariaDB
Connector/J, each running the seed's grant as its own program, unchanged.

Each is raced at t2-waits: at repeatable read the duplicate shows on both servers (T2
waits on the server for T1's lock, then its check misses T1's row), at read committed
the same program is correct; then explored, every order of the two programs' steps.
Where a client is not installed the test says so;
``.ci/run`` installs them all (npm's ``pg`` and ``mysql2`` into tests/node, Debian's
``libpostgresql-jdbc-java`` and ``libmariadb-java``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from redpacket.database.url import URL
from redpacket.race.wire_race import WireRace
from tests.wire_support import seed_database_mysql, seed_database_pg

HERE = Path(__file__).parent
NODE_MODULES = HERE / "node" / "node_modules"
JDBC_EXAMPLE = HERE.parent / "examples" / "jdbc"
JARS = {"postgresql": Path("/usr/share/java/postgresql.jar"),
        "mysql": Path("/usr/share/java/mariadb-java-client.jar")}  # fmt: skip
CHECK = "SELECT order_id, count(*) FROM red_packets GROUP BY order_id HAVING count(*) > 1"
RESET = "DELETE FROM red_packets"


@dataclass(frozen=True)
class Client:
    name: str
    engine: str  # "postgresql" or "mysql": which server it talks to

    def missing(self) -> str | None:
        if self.name.startswith("node"):
            module = "pg" if self.engine == "postgresql" else "mysql2"
            if shutil.which("node") is None:
                return "node is not installed"
            if not (NODE_MODULES / module).is_dir():
                return f"npm's {module} is not installed (npm install --prefix tests/node)"
            return None
        if shutil.which("javac") is None or shutil.which("java") is None:
            return "javac and java (a JDK) are not installed"
        jar = JARS[self.engine]
        if not jar.exists():
            package = {"postgresql": "libpostgresql-jdbc-java", "mysql": "libmariadb-java"}
            return f"{jar} is missing (apt-get install {package[self.engine]})"
        return None

    def command(self, classes: Path, level: str) -> str:
        if self.name.startswith("node"):
            script = "grant_pg.js" if self.engine == "postgresql" else "grant_mysql.js"
            return f'node {HERE / "node" / script} "{level}"'
        return f'java -cp {classes}:{JARS[self.engine]} Grant "{level}"'

    def java(self, classes: Path, main: str) -> str:
        return f"java -cp {classes}:{JARS[self.engine]} {main}"


CLIENTS = [
    Client("node-postgres", "postgresql"),
    Client("node-mysql2", "mysql"),
    Client("pgjdbc", "postgresql"),
    Client("mariadb-connector-j", "mysql"),
]


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Grant.java compiled once, where a JDK is installed."""
    if shutil.which("javac") is None:
        return None
    out = tmp_path_factory.mktemp("java")
    sources = [str(JDBC_EXAMPLE / name) for name in ("Grant.java", "GrantLockFirst.java")]
    subprocess.run(["javac", "-d", str(out), *sources], check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    return out


@pytest.fixture(params=CLIENTS, ids=lambda c: c.name)
def client(request: pytest.FixtureRequest) -> Client:
    chosen: Client = request.param
    why = chosen.missing()
    if why:
        pytest.skip(why)
    return chosen


@pytest.fixture
def database(
    client: Client, request: pytest.FixtureRequest, worker_id_suffix: str
) -> Iterator[URL]:
    name = f"redpacket_clients_{worker_id_suffix}"
    if client.engine == "postgresql":
        yield from seed_database_pg(request.getfixturevalue("server"), name)
    else:
        request.getfixturevalue("innodb_watch")
        yield from seed_database_mysql(request.getfixturevalue("mysql_server"), name)


def two_of(client: Client, classes: Path | None, database: URL, level: str) -> WireRace:
    """The client's program at ``level``, twice: the race of two grant requests."""
    assert classes is not None or client.name.startswith("node")
    command = client.command(classes or HERE, level)
    return WireRace(database, [command, command], check=CHECK, reset=RESET, step_timeout=30)


def test_the_clients_program_duplicates_at_repeatable_read_and_holds_at_read_committed(
    client: Client, database: URL, classes: Path | None
) -> None:
    attempt = two_of(client, classes, database, "REPEATABLE READ").scheduled("t2-waits")
    outputs = [getattr(f, "output", f) for f in attempt.finished]
    assert [getattr(f, "status", None) for f in attempt.finished] == [0, 0], outputs
    assert attempt.broken == ((7, 2),)
    waits = [e for e in attempt.result.events if e.kind == "wait"]
    assert [(e.call, e.waited_on) for e in waits] == [(2, (1,))]  # the server's account
    assert "FOR UPDATE" in waits[0].sql
    steps = [e.sql for e in attempt.result.events if e.call == 1 and e.kind == "done"]
    assert len(steps) == 5, steps  # the drivers' start-up talk glued, not counted
    # the order's id as the server got it: bound apart (text, pgjdbc's binary int4, mysql2's
    # binary double) or written into the SQL by the driver (Connector/J's client-side prepare)
    assert re.search(r"\(bound: 7(\.0)?\)$|id = 7$", steps[0]), steps[0]

    assert two_of(client, classes, database, "READ COMMITTED").scheduled("t2-waits").broken == ()


def test_explore_finds_the_clients_duplicate_and_every_schedule_of_the_fix_holds(
    client: Client, database: URL, classes: Path | None
) -> None:
    """Every order of the two programs' steps, each run judged by the check on the server."""
    found = two_of(client, classes, database, "REPEATABLE READ").explored()
    assert found.complete
    assert found.shortest is not None, found
    # T1 reads (its snapshot taken), T2 grants and commits, T1's check misses T2's row
    assert found.shortest.schedule == "T1:1,T2:end,T1:end"
    assert "--check returned 1 row(s): (7, 2)" in found.shortest.message

    held = two_of(client, classes, database, "READ COMMITTED").explored()
    assert held.complete
    assert held.runs > 1
    assert held.failing == [], str(held.shortest)


@pytest.mark.parametrize(
    "client", [c for c in CLIENTS if not c.name.startswith("node")], ids=lambda c: c.name,
    indirect=True,
)  # fmt: skip
def test_the_jdbc_example_breaks_and_its_lock_first_fix_holds_on_innodb_only(
    client: Client, database: URL, classes: Path | None
) -> None:
    """examples/jdbc, as its README runs it: the seed's service is broken by the shortest
    schedule explore finds; lock first holds in every schedule on InnoDB (a locking read
    takes no snapshot) and not on PostgreSQL (the lock fixed the snapshot)."""
    assert classes is not None
    seed = client.java(classes, "Grant")
    found = WireRace(database, [seed, seed], check=CHECK, reset=RESET).explored()
    assert found.complete
    assert found.shortest is not None
    assert found.shortest.schedule == "T1:1,T2:end,T1:end"
    fixed = client.java(classes, "GrantLockFirst")
    race = WireRace(database, [fixed, fixed], check=CHECK, reset=RESET)
    if client.engine == "mysql":
        found = race.explored()
        assert found.complete
        assert found.failing == []
    else:
        assert race.scheduled("t2-waits").broken == ((7, 2),)
