"""``redpacket proxy``: every transaction that passes, its steps, waits and end.

Nothing is held: each round trip goes on at once. A step that has not come back after
a few milliseconds is looked up on the server (the engine's ``blocked_by``: on
PostgreSQL ``pg_blocking_pids``), so "who waited on whom" is the server's account,
never a timer's guess. A transaction is reported when the server says it is over
(ReadyForQuery back to idle): committed, rolled back, or refused with the server's
code; a lone statement outside a transaction block is reported as one, unless it is a
driver's housekeeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redpacket.database.url import URL
from redpacket.engines import Engine
from redpacket.wire.housekeeping import is_housekeeping
from redpacket.wire.link import Answer, Link, Request

LOOK_AFTER_S = 0.005  # a step still out after this long is looked up on the server
COLUMN = 100


@dataclass
class TracedStep:
    sql: str
    params: Any
    started: float
    ended: float | None = None
    waited_on: set[int] = field(default_factory=set)  # connection numbers (0: not the proxy's)
    error: tuple[str, str] | None = None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "sql": self.sql,
            "params": self.params,
            "ms": None if self.ended is None else round((self.ended - self.started) * 1000, 3),
            "waited_on": sorted(self.waited_on),
            "error": _error(self.error),
        }


@dataclass
class Transaction:
    connection: int
    session_id: int | None
    started: float
    steps: list[TracedStep] = field(default_factory=list)


class Tracer:
    def __init__(self, url: URL, database: Engine, emit: Callable[[dict[str, Any]], None]):
        self.database = database
        self.emit = emit
        self.observer = database.connect(url, autocommit=True, application="redpacket proxy")
        self.lock = threading.Lock()
        self.open: dict[int, Transaction] = {}  # link number -> its transaction
        self.out: dict[int, tuple[Link, TracedStep]] = {}  # link number -> its step in flight
        self.by_session: dict[int, int] = {}  # server session id -> link number
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_waits, daemon=True,
                                       name="redpacket-proxy-waits")  # fmt: skip
        self._watch.start()

    # -- the listener --------------------------------------------------------------------

    def opened(self, link: Link) -> None:
        if link.session_id is not None:
            with self.lock:
                self.by_session[link.session_id] = link.number

    def closed(self, link: Link) -> None:
        with self.lock:
            self.out.pop(link.number, None)
            open_one = self.open.pop(link.number, None)
        if open_one is not None and open_one.steps:
            self._report(open_one, "cut", None)  # the connection ended inside a transaction

    def before(self, link: Link, request: Request) -> bool:
        if request.closes or not request.statements:
            return False
        with self.lock:
            transaction = self.open.get(link.number)
        if transaction is None and is_housekeeping(request.statements, link.in_transaction):
            return False
        now = time.monotonic()
        step = TracedStep(request.sql, [list(p) for p in request.params if p] or None, now)
        with self.lock:
            if transaction is None:
                transaction = Transaction(link.number, link.session_id, now)
                self.open[link.number] = transaction
            transaction.steps.append(step)
            self.out[link.number] = (link, step)
        return True

    def after(self, link: Link, request: Request, answer: Answer) -> None:
        now = time.monotonic()
        with self.lock:
            self.out.pop(link.number, None)
            transaction = self.open.get(link.number)
            if transaction is None or not transaction.steps:
                return
            step = transaction.steps[-1]
            step.ended, step.error, step.tags = now, answer.error, answer.tags
            if answer.in_transaction:
                return
            del self.open[link.number]
        errors = [s.error for s in transaction.steps if s.error is not None]
        tag = (step.tags or ("",))[-1]
        if errors:
            self._report(transaction, "refused", errors[0])
        elif tag == "ROLLBACK":
            self._report(transaction, "rolled back", None)
        else:
            self._report(transaction, "committed", None)

    # -- waits, from the server ------------------------------------------------------------

    def _watch_waits(self) -> None:
        while not self._stop.wait(LOOK_AFTER_S):
            now = time.monotonic()
            with self.lock:
                late = [(link, step) for link, step in self.out.values()
                        if now - step.started >= LOOK_AFTER_S]  # fmt: skip
                sessions = dict(self.by_session)
            for link, step in late:
                if link.session_id is None:
                    continue
                try:
                    holders = self.database.blocked_by(self.observer, link.session_id)
                except Exception:  # the observer's own connection failed: no more waits seen
                    return
                with self.lock:
                    new = {sessions.get(pid, 0) for pid in holders} - step.waited_on
                    step.waited_on |= new
                if new:  # said live, as it happens
                    who = ", ".join(_who(n) for n in sorted(new))
                    flat = " ".join(step.sql.split())[:COLUMN]
                    text = f"connection {link.number} waits for {who}: {flat}"
                    self.emit({"event": "wait", "connection": link.number,
                               "session_id": link.session_id, "waits_for": sorted(new),
                               "sql": step.sql, "text": text})  # fmt: skip

    def close(self) -> None:
        self._stop.set()
        self._watch.join(1)
        self.observer.close()

    # -- what is printed ---------------------------------------------------------------------

    def _report(self, transaction: Transaction, end: str, error: tuple[str, str] | None) -> None:
        took = (time.monotonic() - transaction.started) * 1000
        record: dict[str, Any] = {
            "event": "transaction",
            "connection": transaction.connection,
            "session_id": transaction.session_id,
            "end": end,
            "error": _error(error),
            "ms": round(took, 3),
            "steps": [step.to_json() for step in transaction.steps],
        }
        how = end if error is None else f"{end} ({error[0]}: {error[1]})"
        lines = [f"connection {transaction.connection} (session {transaction.session_id}):"
                 f" {how}, {len(transaction.steps)} step(s), {took:.1f} ms"]  # fmt: skip
        for number, step in enumerate(transaction.steps, start=1):
            flat = " ".join(step.sql.split())
            flat = flat if len(flat) <= COLUMN else flat[: COLUMN - 3] + "..."
            marks = ""
            if step.waited_on:
                who = ", ".join(_who(n) for n in sorted(step.waited_on))
                marks += f"  [waited for {who}]"
            if step.error is not None:
                marks += f"  [error {step.error[0]}]"
            lines.append(f"  {number}. {flat}{marks}")
        record["text"] = "\n".join(lines)
        self.emit(record)


def _error(error: tuple[str, str] | None) -> dict[str, str] | None:
    return None if error is None else {"code": error[0], "message": error[1]}


def _who(connection: int) -> str:
    return f"connection {connection}" if connection else "a session outside the proxy"
