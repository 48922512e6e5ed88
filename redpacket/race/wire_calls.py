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

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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


class CommandRunner:
    """A shell command as a participant: run with the proxy's URL, its exit kept.

    It runs in a process group of its own, so a race that gives up on it (it never
    reached the proxy, a step timed out) ends it and whatever its shell started, rather
    than leaving it running after the lab has exited."""

    def __init__(self, command: str, proxy: Proxy) -> None:
        self.command = command
        self.proxy = proxy
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._stopped = False

    def __call__(self) -> Finished:
        with self._lock:
            if self._stopped:
                return Finished(self.command, -signal.SIGTERM, "")
            process = subprocess.Popen(
                with_url(self.command, self.proxy), shell=True, env=proxy_env(self.proxy),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, errors="replace", start_new_session=True,
            )  # fmt: skip
            self._running.add(process)
        try:
            output, _ = process.communicate()
        finally:
            with self._lock:
                self._running.discard(process)
        return Finished(self.command, process.returncode, output[-OUTPUT_KEPT:])

    def stop(self) -> None:
        """End the command's process group, now and for any later call."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def stop_commands(participants: Iterable[Any]) -> None:
    """The participants that are shell commands end, with whatever their shells started
    (each runs in a session of its own: Ctrl-C at the terminal does not reach it)."""
    for participant in participants:
        if isinstance(participant, CommandRunner):
            participant.stop()


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
        # what each call did before its first step, to say why it had none
        self._opened_while: dict[int, int] = {}  # link number -> the call awaited then
        self._housekeeping: dict[int, list[str]] = {}  # call -> statements not held
        self._notes_from: dict[int, int] = {}  # call -> the proxy's first note since it started
        # a step whose client pipelined more requests before its answer: per link, the
        # answers still to come, the requests answered so far, and the first error
        self._answers_to_come: dict[int, int] = {}
        self._sent_so_far: dict[int, list[Request]] = {}
        self._first_error: dict[int, tuple[str, str]] = {}
        super().__init__(database, list(fns))

    # -- the proxy's listener --------------------------------------------------------------

    def opened(self, link: Link) -> None:
        with self.changed:
            if self._waiting_for_link is not None:
                self._opened_while[link.number] = self._waiting_for_link.number

    def closed(self, link: Link) -> None:
        pass

    def before(self, link: Link, request: Request) -> bool:
        if request.closes:
            return False
        if is_housekeeping(request.statements, link.in_transaction):
            opener = self._opened_while.get(link.number)
            if opener is not None and request.statements:
                self._housekeeping.setdefault(opener, []).append(request.sql)
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
        with self.changed:
            if call.state is State.IN_FLIGHT:
                # pipelined: sent before the step in flight was answered, so it is part of
                # that round trip; the step ends with the last answer
                self._answers_to_come[link.number] = self._answers_to_come.get(link.number, 0) + 1
                return True
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
        with self.changed:
            statement = call.current
            sent = self._sent_so_far.pop(link.number, [])
            if request.statements:
                sent.append(request)
            if self._answers_to_come.get(link.number):
                # a pipelined request's answer is still to come: the step goes on
                self._answers_to_come[link.number] -= 1
                self._sent_so_far[link.number] = sent
                if answer.error is not None:
                    self._first_error.setdefault(link.number, answer.error)
                return
            error = self._first_error.pop(link.number, None) or answer.error
            if statement is not None and not statement.done and sent:
                # a request let go at a Flush grew after it went (its Bind's values, the
                # statements a pipeline sent on), or pipelined ones followed it: the step is
                # what the server received
                statement.sql = "; ".join(r.sql for r in sent)
                statement.params = tuple(v for r in sent for bound in r.params for v in bound)
        cut = self.faults.after(call.number, call.started, link, request, answer)
        with self.changed:
            self.ends_for(call, error if cut is None else cut.error)

    @property
    def cuts(self) -> list[Cut]:
        return self.faults.cuts

    def _proxy_said(self, number: int) -> str:
        """What the proxy noted while the call was the one awaited (a client refused TLS)."""
        start = self._notes_from.get(number)
        if start is None:
            return ""
        end = self._notes_from.get(number + 1, len(self.proxy.notes))
        notes = [note.partition(": ")[2] or note for note in self.proxy.notes[start:end]]
        return f"; the proxy: {'; '.join(notes)}" if notes else ""

    def why_idle(self, number: int) -> str:
        """Why call ``number`` ended with no step, from what it did: how it ended (a
        command's exit status and last line; a function's exception), whether it opened
        a connection through the proxy, and the statements it sent that no race holds."""
        call = self.calls[number - 1]
        who = f"T{number} ({self.names[number - 1]})"
        ended = call.exception if call.exception is not None else call.result
        if isinstance(ended, Finished) and ended.status != 0:
            said = f": {ended.last_line}" if ended.last_line else ""
            told = self._proxy_said(number)
            return f"{who} exited with status {ended.status} before its first step{said}{told}"
        if isinstance(ended, BaseException):
            text = str(ended).strip().splitlines()
            said = f": {text[0]}" if text else ""
            return f"{who} raised {type(ended).__name__} before its first step{said}"
        sent = self._housekeeping.get(number, [])
        if sent:
            shown = "; ".join(dict.fromkeys(sent))
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            return (
                f"{who} sent only statements that touch no table ({shown}): a race holds"
                " the steps that read or write a table, and it had none"
            )
        if number in self._opened_while.values():
            return f"{who} connected through the proxy but sent no statement"
        return f"{who} ran to its end without a statement through the proxy: {self.hint}"

    # -- starting the commands, one at a time ---------------------------------------------

    def __enter__(self) -> WireCalls:
        self.proxy.listener = self
        for call in self.calls:
            with self.changed:
                self._waiting_for_link = call
                self._notes_from[call.number] = len(self.proxy.notes)
            self._start(call)
            deadline = time.monotonic() + self.start_timeout
            with self.changed:
                while call.state is State.RUNNING and self._waiting_for_link is call:
                    if time.monotonic() > deadline:
                        self.release_all()
                        stop_commands(call.fn for call in self.calls)
                        raise RaceError(
                            f"T{call.number} ({self.names[call.number - 1]}) sent no"
                            f" statement through the proxy in {self.start_timeout:.0f} s:"
                            f" {self.hint}"
                        )
                    self.changed.wait(0.01)
                self._waiting_for_link = None
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if kind is not None:  # the race gave up: its commands end with it
            stop_commands(call.fn for call in self.calls)
        super().__exit__()
        self.proxy.listener = PassThrough()
