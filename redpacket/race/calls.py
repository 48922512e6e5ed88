"""The user's calls, each in a thread of its own, paused at every statement boundary.

A call is the user's real function, not a copy: it runs in its own thread and uses
the application's own SQLAlchemy engine. The engine's ``before_cursor_execute`` and
``commit`` events park the thread before each statement until the controller lets
it go; ``after_cursor_execute`` and ``handle_error`` say the statement is done.
Statements run by other threads (the test itself, a fixture) pass untouched.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

from redpacket.engines import Engine as DatabaseEngine


class State(enum.Enum):
    RUNNING = "running"  # in the user's Python code
    PARKED = "parked"  # at a statement, waiting to be let go
    IN_FLIGHT = "in flight"  # the statement is at the server
    FINISHED = "finished"


@dataclass
class Statement:
    call: int  # 1-based
    number: int  # 1-based within the call
    sql: str
    params: Any
    session_id: int | None  # the server's id of the connection it runs on
    error: tuple[str, str] | None = None  # (the engine's code, the server's message)
    done: bool = False


@dataclass
class Call:
    number: int
    fn: Callable[[], Any]
    state: State = State.RUNNING
    allowed: int = 0  # statements it may start
    started: int = 0
    completed: int = 0
    current: Statement | None = None
    result: Any = None
    exception: BaseException | None = None
    in_transaction: bool = False  # a statement ran since the last COMMIT or ROLLBACK
    statements: list[Statement] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state is State.FINISHED


class Participants:
    """The calls of one race and their parking: each call's function runs in a thread of
    its own, and whoever sees a call's statement about to go out (SQLAlchemy's events
    here; the wire proxy for a program in any language, ``redpacket.race.wire_calls``)
    parks it in ``starts_for`` until the controller lets it go. The controller
    (``redpacket.race.controller``) reads only what is here."""

    def __init__(self, database: DatabaseEngine, fns: list[Callable[[], Any]]):
        self.database = database
        self.calls = [Call(n, fn) for n, fn in enumerate(fns, start=1)]
        self.changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.free = False  # True: statements are not paused (hammer, and the end of a race)

    def starts_for(self, call: Call, session_id: int | None, sql: str, params: Any) -> None:
        """``call``'s statement is about to go out: park until it may."""
        with self.changed:
            ending = sql in ("COMMIT", "ROLLBACK")
            call.in_transaction = not ending
            statement = Statement(call.number, call.started + 1, sql, params, session_id)
            call.current = statement
            call.state = State.PARKED
            self.changed.notify_all()
            while not self.free and call.allowed <= call.started:
                self.changed.wait()
            call.started += 1
            call.statements.append(statement)
            call.state = State.IN_FLIGHT
            self.changed.notify_all()

    def ends_for(self, call: Call, error: tuple[str, str] | None) -> None:
        """``call``'s statement came back (``error``: the engine's code and the message)."""
        with self.changed:
            self._complete(call, error)

    def _complete(self, call: Call, error: tuple[str, str] | None) -> None:
        if call.state is State.IN_FLIGHT and call.current is not None:
            call.current.error = error
            call.current.done = True
            call.completed += 1
            call.state = State.RUNNING
            self.changed.notify_all()

    def _run(self, call: Call) -> None:
        try:
            call.result = call.fn()
        except BaseException as exc:  # the user's exception is the call's outcome
            call.exception = exc
        finally:
            with self.changed:
                self._complete(call, None)
                call.state = State.FINISHED
                self.changed.notify_all()

    def _start(self, call: Call) -> None:
        thread = threading.Thread(target=self._run, args=(call,), daemon=True,
                                  name=f"redpacket-race-T{call.number}")  # fmt: skip
        self._threads.append(thread)
        thread.start()

    def __enter__(self) -> Participants:
        for call in self.calls:
            self._start(call)
        return self

    def release_all(self) -> None:
        with self.changed:
            self.free = True
            self.changed.notify_all()

    def __exit__(self, *_: Any) -> None:
        self.release_all()
        deadline = time.monotonic() + 30
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class Calls(Participants):
    """Python calls on the application's SQLAlchemy engine, parked by its events."""

    def __init__(self, engine: Engine, database: DatabaseEngine, fns: list[Callable[[], Any]]):
        super().__init__(database, fns)
        self.engine = engine
        self._mine = threading.local()

    # -- hooks, run in the calls' threads ---------------------------------------------

    def _call(self) -> Call | None:
        return getattr(self._mine, "call", None)

    def starts(self, session_id: int | None, sql: str, params: Any) -> None:
        """A statement of this thread is about to go out: park until it may (a thread
        that is not one of the race's calls goes on at once)."""
        call = self._call()
        if call is not None:
            self.starts_for(call, session_id, sql, params)

    def ends(self, failure: BaseException | None) -> None:
        """This thread's statement came back (``failure``: the exception it raised)."""
        call = self._call()
        if call is None:
            return
        self.ends_for(call, None if failure is None else describe(self.database, failure))

    # -- SQLAlchemy's events ----------------------------------------------------------------

    def _session_id(self, conn: Any) -> int | None:
        return int(self.database.session_id(conn.connection.dbapi_connection))

    def before(self, conn: Any, cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if self._call() is not None:
            self.starts(self._session_id(conn), sql, params)

    def after(self, conn: Any, *_: Any) -> None:
        self.ends(None)

    def failed(self, context: Any) -> None:
        call = self._call()
        if call is not None and call.state is State.IN_FLIGHT:  # only the statement's own error
            self.ends(context.original_exception)

    def _ending(self, word: str, original: Callable[[Any], None]) -> Callable[[Any], None]:
        """The dialect's do_commit / do_rollback, as a statement of the call that runs it:
        paused and recorded; a rollback only when a transaction is open (not the pool's
        reset of a connection that just committed)."""

        def run(dbapi_connection: Any) -> None:
            call = self._call()
            if call is None or (word == "ROLLBACK" and not call.in_transaction):
                original(dbapi_connection)
                return
            raw = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)  # pool proxy
            self.starts(int(self.database.session_id(raw)), word, None)
            try:
                original(dbapi_connection)
            except BaseException as exc:
                self.ends(exc)
                raise
            self.ends(None)

        return run

    # -- the calls' threads -------------------------------------------------------------

    def _run(self, call: Call) -> None:
        self._mine.call = call
        super()._run(call)

    def __enter__(self) -> Calls:
        global _active
        _active = self
        event.listen(self.engine, "before_cursor_execute", self.before)
        event.listen(self.engine, "after_cursor_execute", self.after)
        event.listen(self.engine, "handle_error", self.failed)
        dialect = self.engine.dialect
        self._originals = ("do_commit", "do_rollback")
        for name, word in zip(self._originals, ("COMMIT", "ROLLBACK"), strict=True):
            setattr(dialect, name, self._ending(word, getattr(dialect, name)))
        super().__enter__()
        return self

    def __exit__(self, *_: Any) -> None:
        global _active
        super().__exit__()
        for name, hook in (("before_cursor_execute", self.before),
                           ("after_cursor_execute", self.after),
                           ("handle_error", self.failed)):  # fmt: skip
            event.remove(self.engine, name, hook)
        for name in self._originals:
            vars(self.engine.dialect).pop(name, None)  # the class's own method again
        _active = None


_active: Calls | None = None


def describe(database: DatabaseEngine, failure: BaseException) -> tuple[str, str]:
    """(code, message) of a statement's exception: the engine's reading for the lab's own
    drivers, else what any DB-API driver carries (psycopg2's ``pgcode``, a MySQL driver's
    error number)."""
    found = database.error_of(failure)
    if found is not None:
        return found.code, found.message
    original = getattr(failure, "orig", None) or failure
    found = database.error_of(original)
    if found is not None:
        return found.code, found.message
    code = getattr(original, "pgcode", None) or getattr(original, "sqlstate", None)
    args = getattr(original, "args", ())
    if code is None and args and isinstance(args[0], int):
        code, message = str(args[0]), str(args[1]) if len(args) > 1 else str(original)
        return code, message
    return str(code or "?"), str(original).strip().splitlines()[0] if str(original) else "?"


def active() -> Calls | None:
    """The race running now, for hooks outside SQLAlchemy (``race.psycopg``)."""
    return _active
