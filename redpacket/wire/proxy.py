"""The proxy: a listening socket on loopback, one relay per client connection.

The protocol is the upstream engine's (``engine.wire_protocol``): the core never asks
which engine it is. Each accepted client gets a connection of its own to the real
server and a relay thread (the protocol module's ``serve``); whoever listens
(``Listener``: the tracer, a race) can be swapped between runs while the proxy stays
up, so a long-running service keeps its pool across the attempts of a race.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from redpacket.database.url import URL
from redpacket.errors import LabError
from redpacket.wire.bytes_relay import BytesRelay
from redpacket.wire.link import Link, Listener, PassThrough, connect_to

# where a URL's query can name the server's address instead of its host and port
SOCKET_PARAMETERS = ("host", "hostaddr", "port", "unix_socket")


class Proxy:
    def __init__(
        self, upstream: URL, protocol: Any, listen: tuple[str, int] = ("127.0.0.1", 0),
        on_note: Callable[[str], None] | None = None, pass_through: bool = False,
    ) -> None:  # fmt: skip
        """``pass_through``: nobody will ever listen; after its start-up each connection is
        relayed as bytes by one event loop (``BytesRelay``), the fast path of a load test."""
        self.upstream_url = upstream
        self.address = protocol.address_of(upstream)
        self.protocol = protocol.factory(self.address)
        self.listener: Listener = PassThrough()
        self.notes: list[str] = []
        self._on_note = on_note
        try:
            self.server = socket.create_server(listen, reuse_port=False)
        except OSError as exc:
            raise LabError(f"cannot listen on {listen[0]}:{listen[1]}: {exc.strerror}") from exc
        self.links: list[Link] = []
        self._relays: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="redpacket-proxy")
        self._running = False
        self.bytes_only: BytesRelay | None = BytesRelay() if pass_through else None

    @property
    def host(self) -> str:
        return str(self.server.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def url(self) -> URL:
        """The upstream URL with the proxy's address and no driver: what clients connect to
        (``postgresql://user@127.0.0.1:PORT/db``, as any language's driver reads it).

        An upstream reached by a Unix socket names it in the query (``?host=/run/...``,
        ``?unix_socket=``), which drivers put before the URL's host: left in, every client
        would go past the proxy, to a socket file named after the proxy's port.
        """
        scheme = self.upstream_url.drivername.partition("+")[0]
        direct = self.upstream_url.difference_update_query(SOCKET_PARAMETERS)
        return direct.set(drivername=scheme, host=self.host, port=self.port)

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self._on_note is not None:
            self._on_note(text)

    def start(self) -> Proxy:
        self._running = True
        self._thread.start()
        return self

    def _accept(self) -> None:
        number = 0
        while self._running:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            number += 1
            try:
                upstream = connect_to(self.address, timeout=10)
            except OSError as exc:
                self.note(f"connection {number}: cannot reach the server: {exc.strerror or exc}")
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = Link(number, client, upstream)
            with self._lock:
                self.links.append(link)
            relay = threading.Thread(
                target=self.protocol.serve,
                args=(link, self.listener_of, self.note, self.bytes_only),
                daemon=True, name=f"redpacket-proxy-{number}",
            )  # fmt: skip
            with self._lock:
                self._relays.append(relay)
            relay.start()

    @property
    def listener_of(self) -> Listener:
        """The listener of the moment, asked afresh at each round trip."""
        return _Current(self)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait for the relays of connections whose clients have gone to finish."""
        with self._lock:
            relays = list(self._relays)
        for relay in relays:
            relay.join(timeout)

    def close(self) -> None:
        """Stop listening (the port is free again when this returns) and cut every link."""
        self._running = False
        with contextlib.suppress(OSError):  # wakes the accept() under way: else the kernel
            self.server.shutdown(socket.SHUT_RDWR)  # keeps the socket, and its port, bound
        with contextlib.suppress(OSError):
            self.server.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self.bytes_only is not None:  # its loop stops before the sockets it polls close
            self.bytes_only.close()
        with self._lock:
            links = list(self.links)
        for link in links:
            link.close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.close()


class _Current:
    """Hands each call to whoever listens to the proxy now (a race swaps it per run)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def opened(self, link: Link) -> None:
        self.proxy.listener.opened(link)

    def before(self, link: Link, request: Any) -> bool:
        return self.proxy.listener.before(link, request)

    def after(self, link: Link, request: Any, answer: Any) -> None:
        self.proxy.listener.after(link, request, answer)

    def closed(self, link: Link) -> None:
        self.proxy.listener.closed(link)
