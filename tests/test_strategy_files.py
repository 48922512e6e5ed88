"""A user's own strategy, from a file: loaded, checked before it runs, and run everywhere."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import psycopg
import pytest

from redpacket.cli import main
from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import get_strategy
from redpacket.stress.fast import WORKER_APPLICATION
from redpacket.stress.live import Live
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.runner import run_stress

# The README's example: one INSERT ... WHERE NOT EXISTS looks atomic, and is not.
INSERT_IF_ABSENT = '''
"""insert_if_absent — one INSERT ... WHERE NOT EXISTS: a single statement, so surely atomic?"""

from redpacket.isolation import Isolation
from redpacket.strategies import End, Expected, Race, Step, Strategy

STRATEGY = Strategy(
    name="insert_if_absent",
    summary="INSERT ... SELECT ... WHERE NOT EXISTS, in one statement",
    steps=(
        Step(
            "insert_if_absent",
            "INSERT INTO red_packets (order_id, campaign_id, amount)"
            " SELECT :order_id, CAST(:campaign_id AS varchar), CAST(:amount AS numeric)"
            " WHERE NOT EXISTS (SELECT 1 FROM red_packets"
            " WHERE order_id = :order_id AND campaign_id = :campaign_id)"
            " RETURNING id",
            capture="red_packet_id",
            on_row=End.GRANTED,
            on_no_row=End.ALREADY_GRANTED,
        ),
    ),
    requires_revision="0001",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.DUPLICATE, "neither sees the other's insert"),
        Isolation.REPEATABLE_READ: Expected(Race.DUPLICATE, "neither sees the other's insert"),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
)
'''


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def user_file(tmp_path: Path) -> str:
    path = tmp_path / "insert_if_absent.py"
    path.write_text(INSERT_IF_ABSENT)
    return str(path)


def test_a_single_statement_fix_still_duplicates_step_by_step(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], user_file: str
) -> None:
    verdicts = {}
    for level in ("read-committed", "serializable"):
        status, out, _ = run(
            capsys, *cli_lab, "explain", user_file, "-i", level, "--schedule", "t2-waits", "--json"
        )
        assert status == 0
        data = json.loads(out)
        verdicts[level] = (data["verdict"], data["red_packets"], data["errors"])
    assert verdicts == {
        "read-committed": ("duplicate", 2, []),
        "serializable": ("refused", 1, ["40001"]),
    }


@pytest.mark.stress
def test_a_user_strategy_under_load_in_several_processes(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], user_file: str
) -> None:
    stress = [*cli_lab, "stress", "-s", user_file, "-w", "8", "-n", "30", "--json"]
    status, out, _ = run(capsys, *stress, "-i", "read-committed", "-p", "2", "--expect", "correct")
    assert status == 1  # the child processes loaded the file too, and found the race
    result = json.loads(out)
    assert result["strategy"] == "insert_if_absent"
    assert result["duplicate_orders"] > 0
    status, out, _ = run(
        capsys, *stress, "-i", "serializable", "--retries", "30", "--expect", "correct"
    )
    assert status == 0
    assert json.loads(out)["duplicate_orders"] == 0


def test_a_user_strategy_joins_the_matrix_and_the_list(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], user_file: str
) -> None:
    status, out, _ = run(
        capsys, *cli_lab, "matrix", "--strategies", f"seed,{user_file}",
        "--isolation", "read-committed", "--schedules", "t2-first-read", "--json",
    )  # fmt: skip
    assert status == 0
    cells = {cell["strategy"]: cell["verdict"] for cell in json.loads(out)}
    assert cells == {"seed": "correct", "insert_if_absent": "duplicate"}
    status, out, _ = run(capsys, "strategies", user_file, "--json")
    assert status == 0
    listed = json.loads(out)
    assert listed["name"] == "insert_if_absent"
    assert listed["file"] == str(Path(user_file).resolve())
    assert listed["verdicts"]["read-committed"]["race"] == "duplicate"


BROKEN = {
    "missing": (None, "strategy file {path} not found"),
    "syntax": ("STRATEGY = (", "cannot load strategy file {path}: SyntaxError"),
    "raises": ("import nonexistent_module_xyz", "ModuleNotFoundError"),
    "empty": ("X = 1", "must define STRATEGY = Strategy(...)"),
    "builtin": (
        INSERT_IF_ABSENT.replace('name="insert_if_absent"', 'name="seed"'),
        "names its strategy 'seed', which is built in",
    ),
    "param": (
        INSERT_IF_ABSENT.replace(":amount AS", ":bonus AS"),
        "uses :bonus, which neither the grant",
    ),
    "revision": (
        INSERT_IF_ABSENT.replace('requires_revision="0001"', 'requires_revision="0003"'),
        "requires_revision must be '0001'",
    ),
    "two_statements": (
        INSERT_IF_ABSENT.replace('" RETURNING id"', '" RETURNING id; DELETE FROM orders"'),
        "holds more than one statement",
    ),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_strategy_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    source, expected = BROKEN[kind]
    path = tmp_path / f"{kind}.py"
    if source is not None:
        path.write_text(textwrap.dedent(source))
    status, out, err = run(capsys, "strategies", str(path))
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert expected.format(path=path) in lines[0]
    assert "Traceback" not in err


def test_sql_the_server_refuses_ends_the_run_naming_the_step(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "ambiguous.py"
    path.write_text(
        INSERT_IF_ABSENT.replace("CAST(:campaign_id AS varchar)", ":campaign_id").replace(
            'name="insert_if_absent"', 'name="ambiguous"'
        )
    )
    for processes in ("1", "2"):
        status, _, err = run(
            capsys, *cli_lab, "stress", "-s", str(path), "-w", "4", "-p", processes
        )
        assert status == 2
        assert err.strip().splitlines() == [
            "redpacket: error: strategy 'ambiguous', step insert_if_absent: the server refuses"
            " its SQL (42P08): inconsistent types deduced for parameter $2"
        ]


def test_the_readme_example_is_the_tested_strategy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, user_file: str
) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Your own fix", 1)[1]
    example = tmp_path / "readme_example.py"
    example.write_text(section.split("```python\n", 1)[1].split("```", 1)[0])
    listed = []
    for path in (str(example), user_file):
        status, out, _ = run(capsys, "strategies", path, "--json")
        assert status == 0
        listed.append(json.loads(out))
    assert listed[0]["name"] == listed[1]["name"] == "insert_if_absent"
    assert listed[0]["steps"] == listed[1]["steps"]  # the README runs what these tests ran


def test_a_strategy_file_loads_as_an_import_would(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # dataclasses look their module up in sys.modules: a file that uses one must load
    path = tmp_path / "with_dataclass.py"
    path.write_text(
        textwrap.dedent(
            """
            from __future__ import annotations

            import dataclasses
            from typing import ClassVar

            from redpacket.isolation import Isolation
            from redpacket.strategies import Expected, Race, Strategy
            from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT, LOCK_ORDER


            @dataclasses.dataclass
            class Wording:
                prefix: ClassVar[str] = "mine: "
                text: str = ""


            STRATEGY = Strategy(
                name="my_lock",
                summary=Wording.prefix + Wording("lock, check, insert").text,
                steps=(LOCK_ORDER, FIND_GRANT, INSERT_GRANT),
                requires_revision="0001",
                verdicts={level: Expected(Race.CORRECT) for level in Isolation},
            )
            """
        )
    )
    status, out, err = run(capsys, "strategies", str(path), "--json")
    assert (status, err) == (0, "")
    assert json.loads(out)["summary"] == "mine: lock, check, insert"


def test_sql_that_breaks_mid_run_ends_it_with_the_figures_so_far(lab: Lab, tmp_path: Path) -> None:
    # The strategy calls a function of the lab's; mid-run it is dropped and every worker
    # killed: they reconnect, cannot prepare any more, and the run ends in one message.
    path = tmp_path / "probe.py"
    path.write_text(
        INSERT_IF_ABSENT.replace("WHERE NOT EXISTS", "WHERE lab_probe() AND NOT EXISTS")
        .replace('name="insert_if_absent"', 'name="probe"')
    )  # fmt: skip
    lab.reset(50)
    schema = Schema.UNCONSTRAINED
    with psycopg.connect(conninfo(lab.url_of(schema)), autocommit=True) as admin:
        admin.execute("CREATE FUNCTION lab_probe() RETURNS boolean LANGUAGE sql AS 'SELECT true'")
        broken: list[int] = []

        def break_it(live: Live) -> None:
            if live.attempts and not broken:
                broken.append(live.attempts)
                admin.execute("DROP FUNCTION lab_probe()")
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s AND datname = current_database()",
                    [WORKER_APPLICATION],
                )

        plan = StressPlan(
            get_strategy(str(path)), Isolation.READ_COMMITTED, workers=2, orders=50,
            workload=Workload.UNIFORM, duration_s=30,
        )  # fmt: skip
        result = run_stress(lab, plan, break_it, reset=False)
    assert broken
    assert result.error is not None
    assert result.error.startswith("strategy 'probe', step insert_if_absent: the server refuses")
    assert "(42883)" in result.error
    assert ", mid-run; the figures are those gathered so far" in result.error
    assert result.tally.attempts >= broken[0]
    assert result.elapsed_s < 30


def test_a_strategy_file_gone_before_the_processes_load_it_is_one_error(
    lab: Lab, tmp_path: Path
) -> None:
    path = tmp_path / "vanishing.py"
    path.write_text(INSERT_IF_ABSENT)
    plan = StressPlan(get_strategy(str(path)), Isolation.READ_COMMITTED, workers=4, processes=2)
    path.unlink()  # loaded here; each worker process loads it again, and cannot
    with pytest.raises(LabError, match=f"strategy file {path} not found"):
        run_stress(lab, plan)


def test_explain_imports_a_strategy_file_once(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the file is the user's code: running it again per helper would repeat its effects
    imports = tmp_path / "imports.log"
    path = tmp_path / "counted.py"
    counter = (
        f"import pathlib\nwith pathlib.Path({str(imports)!r}).open('a') as log:\n"
        "    log.write('imported\\n')\n"
    )
    path.write_text(counter + INSERT_IF_ABSENT)
    status, _, _ = run(capsys, *cli_lab, "explain", str(path), "-i", "read-committed", "--json")
    assert status == 0
    assert imports.read_text().splitlines() == ["imported"]
