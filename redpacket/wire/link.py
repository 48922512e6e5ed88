"""One client's connection through the proxy, and who is told about its round trips.

A protocol module (``redpacket.wire.postgresql``) reads the client's requests and the
server's answers and keeps a ``Link`` up to date; a ``Listener`` (the tracer, a race)
hears each round trip before it goes to the server, and may hold it there, and hears
its answer before the client does: so a client cannot send its next request before
the race has recorded the end of the last one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from redpacket.database.url import URL

# Where the real server listens: (host, port) over TCP, or the path of a Unix socket
Address = tuple[str, int] | str


def connect_to(address: Address, timeout: float) -> socket.socket:
    """A connection to the server, by TCP or by its Unix socket; no delay on TCP: the
    proxy forwards whole messages, and Nagle would hold each small one back."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection(address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock


class Closed(Exception):
    """One side hung up."""


@dataclass(frozen=True)
class Request:
    """One client round trip: the statements it carries, as the server will receive them."""

    statements: tuple[str, ...]  # SQL text; empty for a request that carries none
    params: tuple[tuple[Any, ...], ...] = ()  # the values bound to each statement, if any
    closes: bool = False  # the client said goodbye (Terminate, COM_QUIT)

    @property
    def sql(self) -> str:
        return "; ".join(self.statements)


@dataclass(frozen=True)
class Answer:
    """The server's whole answer to a request."""

    error: tuple[str, str] | None = None  # (SQLSTATE or MySQL's number, the server's message)
    tags: tuple[str, ...] = ()  # what each statement said it did (COMMIT, INSERT 0 1, ...)
    in_transaction: bool = False  # after it: inside a transaction block (or a failed one)


@dataclass
class Link:
    """A client connection and its upstream one, as the protocol module saw them."""

    number: int  # 1, 2, ... in the order the proxy accepted them
    client: socket.socket
    upstream: socket.socket
    session_id: int | None = None  # the server's id of the session (backend pid, thread id)
    in_transaction: bool = False
    autocommit: bool = True  # a statement outside a transaction block commits (MySQL: a flag)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@dataclass(frozen=True)
class WireProtocol:
    """What an engine's protocol module gives the proxy: its relay, made per upstream."""

    name: str
    default_port: int
    factory: Callable[[Address], Any]
    # where a URL says the server is: its host and port, or a Unix socket in its query
    address_of: Callable[[URL], Address]


class Listener(Protocol):
    """Who hears the round trips: the tracer, a race."""

    def opened(self, link: Link) -> None: ...

    def before(self, link: Link, request: Request) -> bool:
        """Called before ``request`` goes to the server; may block to hold it. True: hear
        its answer (``after``), before the client does."""
        ...

    def after(self, link: Link, request: Request, answer: Answer) -> None: ...

    def closed(self, link: Link) -> None: ...


class PassThrough:
    """A listener that holds nothing and records nothing."""

    def opened(self, link: Link) -> None:
        pass

    def before(self, link: Link, request: Request) -> bool:
        return False

    def after(self, link: Link, request: Request, answer: Answer) -> None:
        pass

    def closed(self, link: Link) -> None:
        pass


class Relay(Protocol):
    """A protocol's relay of one connection once it has started: two loops, one a thread."""

    def requests(self) -> None: ...

    def answers(self) -> None: ...


class ExactReader:
    """Reads exactly what it is asked for from a socket, nothing ahead: what the start-up
    did not read is still in the kernel when the link goes to the relay."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = self.sock.recv(n - len(data), socket.MSG_WAITALL)
            if not part:
                break
            data += part
        return data


class Adopter(Protocol):
    """Takes a started link over and relays its bytes unread (``BytesRelay``)."""

    def adopt(self, link: Link, on_closed: Callable[[Link], None]) -> None: ...


def relay_connection(
    link: Link, listener: Listener, start: Callable[[BinaryIO, BinaryIO], Relay | None],
    bytes_only: Adopter | None = None,
) -> None:  # fmt: skip
    """One connection's life, whatever the protocol: ``start`` does the start-up and
    authentication (None: the connection ends there); then the client's requests are read
    here and the server's answers in a thread of their own; however it ends, both sockets
    close and the listener is told. With ``bytes_only``, the start-up reads nothing ahead
    and the started link is handed to it: nobody hears its round trips."""
    if bytes_only is not None:
        client_in: Any = ExactReader(link.client)
        upstream_in: Any = ExactReader(link.upstream)
    else:
        client_in = link.client.makefile("rb")
        upstream_in = link.upstream.makefile("rb")
    adopted = False
    try:
        relay = start(client_in, upstream_in)
        if relay is None:
            return
        listener.opened(link)
        if bytes_only is not None:
            bytes_only.adopt(link, listener.closed)
            adopted = True
            return
        answers = threading.Thread(target=relay.answers, daemon=True,
                                   name=f"redpacket-proxy-{link.number}-answers")  # fmt: skip
        answers.start()
        relay.requests()
        answers.join()
    except (Closed, OSError):
        pass
    finally:
        if not adopted:
            link.close()
            listener.closed(link)
