"""Every command the README shows in a shell block runs, and ends as the README says.

The commands are read out of the README itself, one shell block at a time (a block's
commands share a folder, in order: ``explain --spec race.spec`` then ``spec race.spec``),
with the README's server URLs replaced by the test servers' and a lab database of the
test's own. What each must end with is written here, keyed by the command's text: a
command added to the README without an entry here fails, and so does an entry whose
command left the README. ``make demo`` and ``make test`` are the test suite's own
entries (``tests/test_cli.py`` runs the demo); two spec commands name the reader's own
files and are only checked to be the commands the README says they are.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from redpacket.database.backends import Server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MYSQL_URL = "mysql://root@127.0.0.1:3306/"


@dataclass(frozen=True)
class Expect:
    status: int = 0
    says: tuple[str, ...] = ()  # in what it prints, stdout and stderr together
    pattern: str | None = None  # a regular expression that must match what it prints
    within_s: float | None = None  # "in seconds": far below the 300 s a stuck step once took
    makes: str | None = None  # a file it writes


EXPECTED: dict[str, Expect] = {
    f"redpacket --database-url {PG_URL} --database-url {MYSQL_URL} matrix --schedules"
    " t2-first-read": Expect(says=("duplicate", "PostgreSQL", "MariaDB")),
    "redpacket explain ./insert_if_absent.py -i read-committed --schedule t2-waits": Expect(
        says=("verdict: duplicate",)
    ),
    "redpacket stress -s ./insert_if_absent.py -i read-committed -w 16 -n 100 --expect correct": (
        Expect(status=1, says=("duplicate",))
    ),
    "redpacket matrix --strategies seed,on_conflict,./insert_if_absent.py": Expect(
        says=("insert_if_absent", "duplicate")
    ),
    f"redpacket --database-url {PG_URL} --database-url {MYSQL_URL} matrix --schedules t2-waits"
    " --retries 3": Expect(says=("correct",)),
    "redpacket spec tests/specs/waits.spec": Expect(says=("<waiting ...>",)),
    f"redpacket --database-url {MYSQL_URL} spec tests/specs/waits.spec": Expect(
        says=("<waiting ...>",)
    ),
    "redpacket spec tests/specs/*.spec --expected tests/specs/expected/ --step-timeout 1": Expect(
        says=("basics", "waits"), pattern=r"(?m)^stuck +ok ", within_s=120
    ),
    "redpacket explain seed -i repeatable-read --schedule t2-waits --spec race.spec": Expect(
        says=("verdict: duplicate",)
    ),
    "redpacket spec race.spec": Expect(
        says=("<waiting ...>",), pattern=r"red_packets\n-+\n +2\n\(1 row\)"
    ),
    f"redpacket --database-url {PG_URL} --database-url {MYSQL_URL} anomalies --html"
    " anomalies.html": Expect(says=("possible", "prevented"), makes="anomalies.html"),
    "redpacket stress -s on_conflict -i repeatable-read -w 64 --retries 5 --expect correct": (
        Expect()
    ),
    "redpacket stress -s lock_first -n 200 -w 16 --kill-backends 50 --retries 5 --expect"
    " correct": Expect(),
    "redpacket stress -s lock_first -n 20 -w 4 --workload crossed --retries 20"
    " --deadlock-timeout 20": Expect(),
}
THE_SUITES_OWN = {"make demo", "make test"}
THE_READERS_FILES = {  # the command -> the reader's file it names
    'redpacket spec my.spec --permutation "s1u1 s2u1 s1c s2c"': "my.spec",
    "redpacket spec specs/*.spec --expected expected/": "specs",
    # the same race on the repository's own psql script runs in tests/test_wire.py
    "redpacket race --upstream postgresql://postgres@127.0.0.1:5432/shop --run 'psql -X -q"
    " \"$DATABASE_URL\" -f grant.sql' --run 'psql -X -q {url} -f grant.sql' --reset \"DELETE"
    ' FROM red_packets" --check "SELECT order_id FROM red_packets GROUP BY order_id HAVING'
    ' count(*) > 1" --explore --expect correct': "grant.sql",
    # the same race on examples/jdbc/Grant.java runs in tests/test_wire_clients.py
    "redpacket race --upstream mysql://root@127.0.0.1:3306/shop --run 'java -cp"
    " classes:/usr/share/java/mariadb-java-client.jar Grant' --run 'java -cp"
    " classes:/usr/share/java/mariadb-java-client.jar Grant' --reset \"DELETE FROM"
    ' red_packets" --check "SELECT order_id FROM red_packets GROUP BY order_id HAVING'
    ' count(*) > 1" --schedule t2-waits': "Grant.class",
}


def shell_blocks() -> list[list[str]]:
    """Each ```sh block's commands: continuation lines joined, comments dropped."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        commands = [" ".join(line.split("  #")[0].split()) for line in lines]
        blocks.append([command for command in commands if command])
    return blocks


BLOCKS = [
    block
    for block in shell_blocks()
    if not all(c in THE_SUITES_OWN | set(THE_READERS_FILES) for c in block)
]


def test_every_readme_command_has_its_expected_end() -> None:
    shown = {command for block in shell_blocks() for command in block}
    assert shown - THE_SUITES_OWN - set(THE_READERS_FILES) == set(EXPECTED), (
        "README commands without an entry here, or entries the README no longer shows"
    )
    assert shown >= THE_SUITES_OWN | set(THE_READERS_FILES)
    for path in THE_READERS_FILES.values():  # the reader's files, not the repository's
        assert not (ROOT / path).exists()


def the_insert_if_absent_file() -> str:
    """The README's own example of a strategy file, as a reader would save it."""
    text = README.read_text(encoding="utf-8")
    found = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "STRATEGY =" in b]
    assert len(found) == 1
    return str(found[0])


@pytest.mark.parametrize("block", BLOCKS, ids=[b[0][:60] for b in BLOCKS])
def test_the_readmes_commands_end_as_it_says(
    block: list[str],
    request: pytest.FixtureRequest,
    server: Server,
    tmp_path: Path,
    worker_id_suffix: str,
) -> None:
    servers = {PG_URL: server}
    if any(MYSQL_URL in command for command in block):
        servers[MYSQL_URL] = request.getfixturevalue("mysql_server")
    real = {shown: s.url.render_as_string(hide_password=False) for shown, s in servers.items()}
    lab = f"readme_{BLOCKS.index(block)}_{worker_id_suffix}"
    env = os.environ | {
        "REDPACKET_DATABASE_URL": real[PG_URL],
        "REDPACKET_LAB_DATABASE": lab,
        "COLUMNS": "200",
    }
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    (tmp_path / "insert_if_absent.py").write_text(the_insert_if_absent_file(), encoding="utf-8")
    redpacket = f"{sys.executable} -m redpacket"
    try:
        for command in block:
            if command in THE_READERS_FILES:
                continue
            expect = EXPECTED[command]
            line = command
            for shown, url in real.items():
                line = line.replace(shown, url)
            line = redpacket + line.removeprefix("redpacket")
            started = time.monotonic()
            done = subprocess.run(
                ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            took = time.monotonic() - started
            said = done.stdout + done.stderr
            assert done.returncode == expect.status, f"{command}\n{said[-3000:]}"
            for words in expect.says:
                assert words in said, f"{command}: no {words!r} in\n{said[-3000:]}"
            if expect.pattern is not None:
                assert re.search(expect.pattern, said), f"{command}: {expect.pattern}\n{said}"
            if expect.within_s is not None:
                assert took < expect.within_s, f"{command} took {took:.0f} s"
            if expect.makes is not None:
                assert (tmp_path / expect.makes).stat().st_size > 0
    finally:
        for url in real.values():
            subprocess.run(
                [sys.executable, "-m", "redpacket", "--database-url", url, "drop"],
                env=env, capture_output=True, timeout=120,
            )  # fmt: skip
