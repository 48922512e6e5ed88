"""One strategy, three executors, one answer.

The SQLAlchemy service, the scheduler and the loop engine run the same steps each in
its own way (blocking, stepped, pipelined); how a transaction ends is decided once
(``redpacket.strategies.ending``). Held here for every built-in strategy at every
level: each executor gives the outcomes the strategy declares. ``advisory`` is the
strategy whose steps go out as one pipeline batch, ``unique_catch`` the one that
ends through the engine's error branch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.interleave.schedule import parse_schedule
from redpacket.interleave.scheduler import Scheduler
from redpacket.interleave.timeline import Run
from redpacket.isolation import Isolation
from redpacket.retry import CONNECTION_LOST, RetryPolicy
from redpacket.service import GrantRequest, grant
from redpacket.strategies import STRATEGIES, Outcome, Race, Strategy, get_strategy
from redpacket.stress.plan import Engine, StressPlan
from redpacket.stress.result import StressResult
from redpacket.stress.runner import run_stress

CELLS = [(strategy, level) for strategy in STRATEGIES.values() for level in Isolation]
IDS = [f"{strategy.name}-{level.value}" for strategy, level in CELLS]
GRANTED, ALREADY = Outcome.GRANTED, Outcome.ALREADY_GRANTED


@pytest.fixture(scope="module")
def scheduler(lab: Lab) -> Iterator[Scheduler]:
    with Scheduler(lab, timeout_s=5) as running:
        yield running


def scheduled(
    scheduler: Scheduler, strategy: Strategy, level: Isolation, schedule: str, retries: int
) -> Run:
    plan = parse_schedule(schedule, len(strategy.steps))
    return scheduler.run(strategy, level, plan, RetryPolicy(retries))


def race_outcomes(strategy: Strategy, level: Isolation) -> list[Outcome]:
    """What two racing requests are told, sorted, once retries are allowed."""
    if strategy.verdicts[level].race is Race.DUPLICATE:
        return [GRANTED, GRANTED]
    return [GRANTED, ALREADY]


def packets(lab: Lab, strategy: Strategy) -> Counter[int]:
    schema = Schema.for_revision(strategy.requires_revision)
    with psycopg.connect(conninfo(lab.url_of(schema))) as conn:
        rows = conn.execute("SELECT order_id FROM red_packets").fetchall()
    return Counter(int(str(order_id)) for (order_id,) in rows)


@pytest.mark.parametrize(("strategy", "level"), CELLS, ids=IDS)
def test_the_service_and_the_scheduler_agree(
    fresh_lab: Lab, scheduler: Scheduler, strategy: Strategy, level: Isolation
) -> None:
    service = [grant(fresh_lab, strategy, level, GrantRequest(3)).outcome for _ in range(2)]
    serial = scheduled(scheduler, strategy, level, "serial", retries=0)
    assert service == [s.outcome for s in serial.sessions] == [GRANTED, ALREADY]
    assert packets(fresh_lab, strategy)[3] == serial.red_packets == 1

    raced = scheduled(scheduler, strategy, level, "t2-first-read", retries=3)
    assert sorted(s.outcome for s in raced.sessions) == race_outcomes(strategy, level)


def hot(lab: Lab, strategy: Strategy, level: Isolation, engine: Engine) -> StressResult:
    plan = StressPlan(strategy, level, workers=8, orders=20, retries=30, engine=engine)
    return run_stress(lab, plan)


@pytest.mark.stress
@pytest.mark.parametrize("engine", list(Engine), ids=[e.value for e in Engine])
@pytest.mark.parametrize(("strategy", "level"), CELLS, ids=IDS)
def test_the_engines_under_a_hot_race_agree(
    lab: Lab, strategy: Strategy, level: Isolation, engine: Engine
) -> None:
    result = hot(lab, strategy, level, engine)
    per_order = packets(lab, strategy)
    outcomes = Counter(Outcome(o) for o in result.tally.history.outcome)
    assert outcomes[Outcome.FAILED] == outcomes[Outcome.UNKNOWN] == 0, result.tally.failed
    assert outcomes[GRANTED] == sum(per_order.values())  # every grant reported is in the table
    if strategy.verdicts[level].race is Race.DUPLICATE:
        # The GIL narrows the service engine's race; the loop engine's is wide open.
        assert max(per_order.values()) >= 2
    else:
        assert per_order == dict.fromkeys(range(1, 21), 1)
        assert (outcomes[GRANTED], outcomes[ALREADY]) == (20, 140)


DIES_ONCE = '''
"""Terminates its own backend the first time it runs: a connection lost before COMMIT."""
from redpacket.isolation import Isolation
from redpacket.strategies import Expected, Race, Step, Strategy
from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT

DIE_ONCE = Step(
    "die_once",
    "SELECT pg_terminate_backend(pg_backend_pid())"
    " FROM (SELECT nextval('die_once') AS n) AS s WHERE n = 1",
)
STRATEGY = Strategy(
    name="dies_once",
    summary="loses its connection once",
    steps=(DIE_ONCE, FIND_GRANT, INSERT_GRANT),
    requires_revision="0001",
    verdicts={level: Expected(Race.CORRECT) for level in Isolation},
)
'''


@pytest.fixture
def dies_once(fresh_lab: Lab, tmp_path: Path) -> Iterator[Strategy]:
    path = tmp_path / "dies_once.py"
    path.write_text(DIES_ONCE)
    with psycopg.connect(conninfo(fresh_lab.url_of(Schema.UNCONSTRAINED)), autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE die_once")
        try:
            yield get_strategy(str(path))
        finally:
            conn.execute("DROP SEQUENCE die_once")


Told = tuple[Outcome, int, str | None]  # outcome, attempts, reason


def through_the_service(lab: Lab, strategy: Strategy, retries: int) -> Told:
    result = grant(lab, strategy, Isolation.READ_COMMITTED, GrantRequest(4), RetryPolicy(retries))
    return result.outcome, result.attempts, result.reason


def through_the_scheduler(lab: Lab, strategy: Strategy, retries: int) -> Told:
    with Scheduler(lab, sessions=1) as one:
        run = one.run(
            strategy, Isolation.READ_COMMITTED, parse_schedule("T1:end", 3), RetryPolicy(retries)
        )
    (session,) = run.sessions
    return session.outcome, session.attempts, session.reason


def through_the_loop_engine(lab: Lab, strategy: Strategy, retries: int) -> Told:
    plan = StressPlan(strategy, Isolation.READ_COMMITTED, workers=1, orders=1, retries=retries)
    history = run_stress(lab, plan, reset=False).tally.history
    request = history.request(0)
    return Outcome.of_label(request.outcome), request.attempts, request.reason


EXECUTORS = [through_the_service, through_the_scheduler, through_the_loop_engine]


@pytest.mark.parametrize("execute", EXECUTORS, ids=lambda f: f.__name__)
def test_a_connection_lost_before_commit_is_retried_by_every_executor(
    dies_once: Strategy, fresh_lab: Lab, execute: object
) -> None:
    assert execute(fresh_lab, dies_once, 1) == (GRANTED, 2, None)  # type: ignore[operator]
    assert sum(packets(fresh_lab, dies_once).values()) == 1


@pytest.mark.parametrize("execute", EXECUTORS, ids=lambda f: f.__name__)
def test_without_retries_a_lost_connection_fails_as_08006_everywhere(
    dies_once: Strategy, fresh_lab: Lab, execute: object
) -> None:
    told = execute(fresh_lab, dies_once, 0)  # type: ignore[operator]
    assert told == (Outcome.FAILED, 1, CONNECTION_LOST)
    assert not packets(fresh_lab, dies_once)


def test_the_loop_engine_runs_a_hot_race_alike_on_both_wires(lab: Lab, pipe_wire: str) -> None:
    """A fix under a hot race, and the seed's duplicates, on the C wire and on psycopg's."""
    fix, seed = STRATEGIES["lock_first"], STRATEGIES["seed"]
    fixed = hot(lab, fix, Isolation.SERIALIZABLE, Engine.LOOP)
    assert packets(lab, fix) == dict.fromkeys(range(1, 21), 1)
    assert (fixed.tally.granted, fixed.tally.already_granted) == (20, 140)
    assert fixed.tally.retries > 0  # serialization failures met and retried
    hot(lab, seed, Isolation.REPEATABLE_READ, Engine.LOOP)
    assert max(packets(lab, seed).values()) >= 2
