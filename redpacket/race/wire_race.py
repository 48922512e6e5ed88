"""``redpacket race``: the race of programs behind the proxy, without printing.

The invariant is SQL on the real server (``--check``: the rows that break it; none:
correct), as is what comes before (``--setup`` once, ``--reset`` before every
attempt). A schedule runs once; explore runs every order of the participants' steps
(``explore_with``, the fixture's own); each attempt is judged by the check.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redpacket.database.connect import connect, require_server
from redpacket.database.url import URL
from redpacket.database.urls import engine_of
from redpacket.errors import LabError
from redpacket.race.controller import Controller, RaceError, schedule_entries, short_sql
from redpacket.race.explore import Exploration, explore_with
from redpacket.race.timeline import RaceResult
from redpacket.race.wire_calls import CommandRunner, Finished, WireCalls, proxy_env, with_url
from redpacket.race.wire_faults import Cut, Fault
from redpacket.race.wire_hammer import WireHammered, hammer
from redpacket.wire.proxy import Proxy

READY_TIMEOUT_S = 30.0
# --check is read, never run for its effects: it must be a query (a statement that
# changed the data would make every attempt "correct", and change the user's tables),
# and it runs in a read-only transaction, rolled back, so a data-changing CTE or a
# second statement after it is refused by the server itself
_QUERY = re.compile(
    r"\ufeff?(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*(\(\s*)*(select|with|values|table)\b",
    re.IGNORECASE | re.DOTALL,
)
CHECK_IS_A_QUERY = "give a query (SELECT ...) returning the rows that break the invariant"


@dataclass(frozen=True)
class Attempt:
    """One attempt: the race as it ran, and what the check found."""

    result: RaceResult
    broken: tuple[tuple[Any, ...], ...]  # the rows --check returned
    schedule: str
    cuts: tuple[Cut, ...] = ()  # the faults' cuts: outcomes the clients could not know

    @property
    def finished(self) -> list[Finished | BaseException | None]:
        return list(self.result.results)


@dataclass
class WireRace:
    upstream: URL
    commands: Sequence[str]
    check: str | None = None
    reset: str | None = None
    setup: str | None = None
    serve: str | None = None
    ready: str | None = None
    listen: tuple[str, int] = ("127.0.0.1", 0)
    step_timeout: float = 30.0
    ready_timeout: float = READY_TIMEOUT_S
    faults: Sequence[Fault] = ()
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.commands) < 2:
            raise LabError("a race needs two --run commands or more (the competing requests)")
        if self.check is not None and not _QUERY.match(self.check):
            raise LabError(
                f"--check {short_sql(self.check, 40)!r} is not a query: {CHECK_IS_A_QUERY}"
            )
        self.database = engine_of(self.upstream)

    # -- the server's side ------------------------------------------------------------------

    def sql(self, text: str, what: str, query: bool = False) -> tuple[tuple[Any, ...], ...]:
        """Run ``text`` on the upstream, autocommit; its rows (``query``: it must have a
        result). Failing to connect is one line naming the server without its password."""
        with connect(self.upstream, autocommit=True) as conn:
            cursor = conn.cursor()
            try:
                if query:
                    cursor.execute("START TRANSACTION READ ONLY")  # both engines' words
                cursor.execute(text)
                rows = cursor.fetchall() if cursor.description is not None else None
            except Exception as exc:
                error = self.database.error_of(exc)
                if error is None:
                    raise
                raise LabError(
                    f"{what} failed on the server: {error.shown} {error.message}"
                ) from None
            finally:
                if query:
                    with contextlib.suppress(Exception):
                        cursor.execute("ROLLBACK")
            if rows is None:
                if query:
                    raise LabError(f"{what} returned no result: {CHECK_IS_A_QUERY}")
                return ()
            return tuple(tuple(row) for row in rows)

    def _reset(self) -> None:
        if self.reset:
            self.sql(self.reset, "--reset")

    def _broken(self) -> tuple[tuple[Any, ...], ...]:
        return self.sql(self.check, "--check", query=True) if self.check else ()

    # -- running ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[Proxy]:
        """The proxy up (and the service, if any, started and ready) for the whole race."""
        require_server(self.upstream)
        proxy = Proxy(self.upstream, self.database.wire_protocol(), self.listen,
                      on_note=self.notes.append)  # fmt: skip
        with proxy:
            if self.setup:
                self.sql(self.setup, "--setup")
            self._broken()  # a --check the server refuses stops the race before it starts
            service = self._serve(proxy)
            try:
                if service is not None and self.ready:
                    _wait_ready(self.ready, service, self.ready_timeout)
                yield proxy
            finally:
                if service is not None:
                    _stop(service)

    def _serve(self, proxy: Proxy) -> subprocess.Popen[bytes] | None:
        if not self.serve:
            return None
        service = subprocess.Popen(
            with_url(self.serve, proxy), shell=True, env=proxy_env(proxy),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        return service

    def _controller(self, proxy: Proxy, made: list[WireCalls] | None = None) -> Controller:
        def participants() -> WireCalls:
            runners = [CommandRunner(command, proxy) for command in self.commands]
            calls = WireCalls(proxy, self.database, runners, self.commands,
                              start_timeout=self.step_timeout, faults=self.faults)  # fmt: skip
            if made is not None:
                made.append(calls)
            return calls

        return Controller(self.upstream, participants, len(self.commands),
                          step_timeout=self.step_timeout)  # fmt: skip

    def scheduled(self, schedule: str) -> Attempt:
        entries = schedule_entries(schedule, len(self.commands))
        with self.running() as proxy:
            self._reset()
            made: list[WireCalls] = []
            result = self._controller(proxy, made).run(entries)
            _no_idle(result, made[-1])
            return Attempt(result, self._broken(), schedule, tuple(made[-1].cuts))

    def hammered(
        self, attempts: int, progress: Callable[[int, int], None] | None = None
    ) -> WireHammered:
        with self.running() as proxy:
            runners = [CommandRunner(command, proxy) for command in self.commands]
            return hammer(proxy, runners, attempts, self.faults, self._reset, self._broken,
                          progress)  # fmt: skip

    def explored(
        self, max_runs: int = 1000, progress: Callable[[int, int], None] | None = None
    ) -> Exploration:
        def check() -> None:
            rows = self._broken()
            if rows:
                raise AssertionError(f"--check returned {len(rows)} row(s): {rows[0]!r}")

        made: list[WireCalls] = []
        with self.running() as proxy:
            return explore_with(
                lambda: self._controller(proxy, made), check, self._reset, max_runs=max_runs,
                idle_hint=lambda number: made[-1].why_idle(number), progress=progress,
            )  # fmt: skip


def _no_idle(result: RaceResult, calls: WireCalls) -> None:
    idle = [call.number for call in result.calls if not call.statements]
    if idle:
        raise RaceError(calls.why_idle(idle[0]))


def _stop(service: subprocess.Popen[bytes]) -> None:
    """The service and whatever its shell started (its own process group) end with the race."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(service.pid, signal.SIGTERM)
    try:
        service.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGKILL)
        service.wait()


def _wait_ready(ready: str, service: subprocess.Popen[bytes], timeout_s: float) -> None:
    """``--ready``: an HTTP URL that answers, or HOST:PORT that accepts a connection."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise LabError(f"--serve exited with status {service.returncode} before it was ready")
        if _answers(ready):
            return
        time.sleep(0.05)  # polling a service's readiness, not deciding a race
    raise LabError(f"--ready {ready} did not answer within {timeout_s:g} s")


def _answers(ready: str) -> bool:
    if ready.startswith(("http://", "https://")):
        import urllib.request

        try:
            with urllib.request.urlopen(ready, timeout=1):
                return True
        except OSError:
            return False
    host, _, port = ready.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise LabError(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:6432")
    return host or "127.0.0.1", int(port)
