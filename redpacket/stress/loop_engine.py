"""The fast engine on PostgreSQL: non-blocking libpq connections in one event loop per process.

Every worker is a connection plus a small state machine stepping through the
strategy's steps (``worker``); statements are prepared once per connection. BEGIN
and every step up to the next one whose result the client must see go out as one
pipeline batch (plus COMMIT, when that step commits whatever it returns). The
statements and their order are exactly the strategy's, so batching does not
change what the transaction does — only the round trips it costs.

A worker whose connection dies reconnects. If COMMIT was in flight, its request's
outcome is *unknown* (it may or may not have committed) and the checker resolves
it; otherwise the transaction certainly rolled back and the request is retried.
"""

from __future__ import annotations

from typing import Any

from redpacket.stress.event_loop import EventLoop
from redpacket.stress.pipes import Pipe, pipe_class
from redpacket.stress.plan import StressPlan
from redpacket.stress.statements import (
    Compiled,
    ConnectionFailed,
    PipeError,
    StatementRefused,
    apply_settings,
)
from redpacket.stress.worker import Worker


class LoopEngine(EventLoop):
    """Runs one process's share of a stress plan over libpq pipelines."""

    def __init__(
        self, plan: StressPlan, conninfo: str, workers: int, attempts: int | None, seed: int,
        first_worker: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(plan, attempts, seed)
        self.conninfo = conninfo.encode()
        strategy = plan.strategy.for_engine("postgresql")
        if any(step.afterwards for step in strategy.steps):
            raise StatementRefused(
                f"strategy {strategy.name!r} releases something after its transaction ends"
                " (Step.afterwards), which the libpq loop engine does not run; use --engine"
                " service"
            )
        self.compiled = Compiled(strategy, plan.isolation.begin_sql)
        self.pipe_class = pipe_class()
        self.base_context: dict[str, Any] = {
            "campaign_id": plan.campaign_id.encode(),
            "amount": plan.amount.encode(),
        }
        self.connect_all([Worker(self, first_worker + i) for i in range(workers)], self.reconnect)

    def reconnect(self, worker: Worker, initial: bool = False) -> bool:
        """Give ``worker`` a fresh, prepared connection; on failure try again later."""
        pipe: Pipe | None = None
        try:
            pipe = self.pipe_class(self.conninfo)
            self.compiled.prepare(pipe)
            apply_settings(pipe, self.plan.session_settings)
            pipe.start_pipeline()
        except BaseException as exc:  # StatementRefused ends the run: no connection stays
            if pipe is not None:
                pipe.close()
            if not isinstance(exc, (ConnectionFailed, PipeError)):
                raise
            text = str(exc).strip()
            self.connection_failed(worker, text.splitlines()[0] if text else "failed", initial)
            return False
        worker.pipe = pipe
        worker.fd = pipe.socket
        self.connected(worker, initial)
        return True
