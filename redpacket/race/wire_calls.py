"""Programs in any language as the calls of a race, their steps held on the wire.

Each participant is a shell command (``node claim.js``, ``curl -X POST ...``) run with
the proxy's URL in ``DATABASE_URL``. The commands start one at a time: the first
connection whose first step arrives after command *i* started is T*i*'s, so who is
T1 does not depend on which process the kernel ran first. A step is one round trip
that is not housekeeping (``redpacket.wire.housekeeping``); the proxy holds it until
the controller (the same one that races Python functions) lets it go, and tells the
controller its end before the client hears it. Connections that are no participant's
(a pool's spare ones, a second connection of the same program) pass untouched.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redpacket.engines import Engine as DatabaseEngine
from redpacket.race.calls import Call, Participants, State
from redpacket.race.controller import RaceError
from redpacket.race.wire_faults import Cut, Fault, Injector
from redpacket.wire.housekeeping import is_housekeeping
from redpacket.wire.link import Answer, Link, PassThrough, Request
from redpacket.wire.proxy import Proxy

OUTPUT_KEPT = 4000  # characters of a command's output kept for the report


@dataclass(frozen=True)
class Finished:
    """How a participant's command ended."""

    command: str
    status: int
    output: str  # stdout and stderr, the last OUTPUT_KEPT characters

    @property
    def last_line(self) -> str:
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def proxy_env(proxy: Proxy) -> dict[str, str]:
    return os.environ | {"DATABASE_URL": proxy.url().render_as_string(hide_password=False)}


def with_url(command: str, proxy: Proxy) -> str:
    return command.replace("{url}", proxy.url().render_as_string(hide_password=False))


def command_runner(command: str, proxy: Proxy) -> Callable[[], Finished]:
    """A shell command as a participant: run with the proxy's URL, its exit kept."""

    def run() -> Finished:
        done = subprocess.run(
            with_url(command, proxy), shell=True, env=proxy_env(proxy), capture_output=True,
            text=True, errors="replace", stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return Finished(command, done.returncode, (done.stdout + done.stderr)[-OUTPUT_KEPT:])

    return run


class WireCalls(Participants):
    """The participants of one attempt (shell commands, or Python callables on any driver
    connected to the proxy), and the proxy's listener while they run."""

    def __init__(
        self, proxy: Proxy, database: DatabaseEngine, fns: Sequence[Callable[[], Any]],
        names: Sequence[str], *, start_timeout: float = 30.0, faults: Sequence[Fault] = (),
        hint: str = "does it connect to DATABASE_URL (or {url})?",
    ) -> None:  # fmt: skip
        self.proxy = proxy
        self.hint = hint
        self.names = list(names)
        self.start_timeout = start_timeout
        self.faults = Injector(faults)
        self._links: dict[int, Call] = {}  # link number -> its call
        self._waiting_for_link: Call | None = None  # the call whose first step is awaited
        super().__init__(database, list(fns))

    # -- the proxy's listener --------------------------------------------------------------

    def opened(self, link: Link) -> None:
        pass

    def closed(self, link: Link) -> None:
        pass

    def before(self, link: Link, request: Request) -> bool:
        if is_housekeeping(request.statements, link.in_transaction) or request.closes:
            return False
        with self.changed:
            call = self._links.get(link.number)
            if call is None and self._waiting_for_link is not None:
                call = self._waiting_for_link
                self._waiting_for_link = None
            elif call is None and (number := self.faults.reconnected()) is not None:
                call = self.calls[number - 1]  # the cut participant, on a new connection
            if call is not None:
                self._links.setdefault(link.number, call)
                self.changed.notify_all()
        if call is None or self.free:
            return False
        params = tuple(value for bound in request.params for value in bound)  # in order sent
        self.starts_for(call, link.session_id, request.sql, params)
        cut = self.faults.before(call.number, call.started, link, request)
        if cut is not None:
            self.ends_for(call, cut.error)
            return False
        return True

    def after(self, link: Link, request: Request, answer: Answer) -> None:
        call = self._links.get(link.number)
        if call is None:
            return
        cut = self.faults.after(call.number, call.started, link, request, answer)
        self.ends_for(call, answer.error if cut is None else cut.error)

    @property
    def cuts(self) -> list[Cut]:
        return self.faults.cuts

    # -- starting the commands, one at a time ---------------------------------------------

    def __enter__(self) -> WireCalls:
        self.proxy.listener = self
        for call in self.calls:
            with self.changed:
                self._waiting_for_link = call
            self._start(call)
            deadline = time.monotonic() + self.start_timeout
            with self.changed:
                while call.state is State.RUNNING and self._waiting_for_link is call:
                    if time.monotonic() > deadline:
                        self.release_all()
                        raise RaceError(
                            f"T{call.number} ({self.names[call.number - 1]}) sent no"
                            f" statement through the proxy in {self.start_timeout:.0f} s:"
                            f" {self.hint}"
                        )
                    self.changed.wait(0.01)
                self._waiting_for_link = None
        return self

    def __exit__(self, *_: Any) -> None:
        super().__exit__()
        self.proxy.listener = PassThrough()
