"""The fast stress engine for each database engine, one registry entry each.

PostgreSQL has libpq's non-blocking, pipelined connections: one event loop per
process (``loop_engine``), pgbench's own design. MySQL's drivers have no such
thing: a thread per worker (``thread_engine``). Both run the strategy's steps
through ``Walk`` and end transactions through ``Ending``; both take plain values
(engine name, URL), so worker processes can build them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy.engine import make_url

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


def _threads(
    plan: StressPlan, url: str, workers: int, attempts: int | None, seed: int, first: int
) -> FastEngine:
    from redpacket.stress.thread_engine import ThreadEngine

    return ThreadEngine(plan, "mysql", url, workers, attempts, seed, first)


BUILDERS: dict[str, Builder] = {"postgresql": _libpq_loop, "mysql": _threads}


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
