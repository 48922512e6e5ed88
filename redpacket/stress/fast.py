"""The fast stress engine for each database engine, one registry entry each.

Both are one event loop per process (``event_loop``), pgbench's own design, over
the engine's own wire: libpq's non-blocking, pipelined connections on PostgreSQL
(``loop_engine``), mysqlclient's send-then-read, one statement in flight, on MySQL
(``mysql_loop``). Both run the strategy's steps through ``Walk`` and end
transactions through ``Ending``; both take plain values (engine name, URL), so
worker processes can build them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from redpacket.database.url import make_url
from redpacket.errors import LabError
from redpacket.stress.plan import StressPlan
from redpacket.stress.tally import Tally

WORKER_APPLICATION = "redpacket-stress"


class FastEngine(Protocol):
    attempted: bytearray

    @property
    def tally(self) -> Tally: ...

    def run(
        self,
        deadline: float | None,
        progress: Callable[[Tally], bool],
        barrier: Callable[[], None] | None = None,
    ) -> Tally: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


Builder = Callable[[StressPlan, str, int, int | None, int, int], FastEngine]


def _libpq_loop(
    plan: StressPlan, url: str, workers: int, attempts: int | None, seed: int, first: int
) -> FastEngine:
    from redpacket.engines.postgresql import conninfo
    from redpacket.stress.loop_engine import LoopEngine

    target = conninfo(make_url(url), WORKER_APPLICATION)
    return LoopEngine(plan, target, workers, attempts, seed, first)


def _mysql_loop(
    plan: StressPlan, url: str, workers: int, attempts: int | None, seed: int, first: int
) -> FastEngine:
    from redpacket.stress.mysql_loop import MySQLLoop

    return MySQLLoop(plan, url, workers, attempts, seed, first)


BUILDERS: dict[str, Builder] = {"postgresql": _libpq_loop, "mysql": _mysql_loop}


def build(
    plan: StressPlan,
    database: str,
    url: str,
    workers: int,
    attempts: int | None,
    seed: int,
    first_worker: int = 0,
) -> FastEngine:
    """The fast engine for ``database``, its workers connected and ready."""
    builder = BUILDERS.get(database)
    if builder is None:
        raise LabError(f"no fast stress engine for {database}; use --engine service")
    return builder(plan, url, workers, attempts, seed, first_worker)


def loop_build() -> str:
    """How this installation runs the event loop: compiled by mypyc (a wheel built with a C
    compiler at hand) or as Python (an editable install, or no compiler); figures differ."""
    from redpacket.stress import event_loop

    compiled = not str(event_loop.__file__).endswith(".py")
    return "compiled (mypyc)" if compiled else "pure Python"
