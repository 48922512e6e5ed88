"""Connections relayed as bytes, once their start-up is done: the proxy as a load test's hop.

A traced or raced connection is read message by message in two threads of its own, so
that a listener can hold a step; when nobody will ever listen (``redpacket proxy
--pass-through``) those threads cost a load test most of its throughput: they contend for
the GIL at every round trip (3.3k tps through the proxy against pgbouncer's 17k, pgbench
``-S -M prepared -c 8``). Here every such connection is served by one loop in one thread,
pgbouncer's design: a socket is read when the kernel says it has bytes, and what was read
is written to the other side at once. asyncio's transports do the same generically; a
first try with them ran about 15 % slower than this loop (the same pgbench, 4 interleaved
8 s rounds, 13.0k against 15.5k tps median, 2026-12-07), which is why it is written out.

Flow control: when the other side cannot take everything (its socket buffer is full: a
slow client reading a big result), the rest is kept and this side is not read again until
it has gone out, so the proxy holds at most one read's worth per direction.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from redpacket.wire.link import Link

READ_SIZE = 256 * 1024
FLUSH_TIMEOUT_S = 1.0  # what one side said before hanging up still goes to the other


class _End:
    """One socket of a link, and what is still to be written to it."""

    __slots__ = ("link", "on_closed", "out", "paused", "peer", "sock")

    def __init__(self, sock: socket.socket, link: Link, on_closed: Callable[[Link], None]):
        self.sock = sock
        self.link = link
        self.on_closed = on_closed
        self.peer: _End = self
        self.out = b""  # read from the peer, not yet taken by this socket
        self.paused = False  # not read while the peer has bytes of ours left to write


class _Poller:
    """epoll where there is one, poll elsewhere: the same calls, each its own flags."""

    def __init__(self) -> None:
        epoll = getattr(select, "epoll", None)
        self.poller: Any
        if epoll is not None:
            self.poller, self.IN, self.OUT = epoll(), select.EPOLLIN, select.EPOLLOUT
        else:  # pragma: no cover - not Linux
            self.poller, self.IN, self.OUT = select.poll(), select.POLLIN, select.POLLOUT


class BytesRelay:
    """One thread relaying every adopted link until either side hangs up."""

    def __init__(self) -> None:
        self._poll = _Poller()
        self._ends: dict[int, _End] = {}
        self._adopted: list[tuple[Link, Callable[[Link], None]]] = []
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._poll.poller.register(self._wake_read, self._poll.IN)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="redpacket-proxy-bytes")  # fmt: skip
        self._thread.start()

    def adopt(self, link: Link, on_closed: Callable[[Link], None]) -> None:
        """From now on ``link`` is relayed here; ``on_closed(link)`` once it has ended."""
        with self._lock:
            self._adopted.append((link, on_closed))
        os.write(self._wake_write, b"!")

    def close(self) -> None:
        """Stop the loop, then close every link it still relays."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"!")
        self._thread.join(5)
        for end in list(self._ends.values()):
            self._finish(end, flush=False)
        with self._lock:
            adopted, self._adopted = self._adopted, []
        for link, on_closed in adopted:
            link.close()
            on_closed(link)
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        poll, ends = self._poll.poller.poll, self._ends
        writable = self._poll.OUT
        while not self._stopping:
            for fd, events in poll():
                end = ends.get(fd)
                if end is None:
                    if fd == self._wake_read:
                        self._take_adopted()
                    continue
                if events & writable:
                    self._write(end)
                else:
                    self._read(end)

    def _take_adopted(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_read, 4096)
        with self._lock:
            adopted, self._adopted = self._adopted, []
        for link, on_closed in adopted:
            client = _End(link.client, link, on_closed)
            upstream = _End(link.upstream, link, on_closed)
            client.peer, upstream.peer = upstream, client
            for end in (client, upstream):
                end.sock.setblocking(False)
                self._ends[end.sock.fileno()] = end
                self._poll.poller.register(end.sock.fileno(), self._poll.IN)

    def _read(self, end: _End) -> None:
        try:
            data = end.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._finish(end, flush=True)
            return
        peer = end.peer
        if peer.out:  # a hang-up seen while paused: keep the order
            peer.out += data
            return
        try:
            sent = peer.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._finish(end, flush=False)
            return
        if sent < len(data):
            peer.out = data[sent:]
            end.paused = True
            self._watch(end)
            self._watch(peer)

    def _write(self, end: _End) -> None:
        try:
            sent = end.sock.send(end.out)
        except BlockingIOError:
            return
        except OSError:
            self._finish(end, flush=False)
            return
        end.out = end.out[sent:]
        if not end.out:
            end.peer.paused = False
            self._watch(end)
            self._watch(end.peer)

    def _watch(self, end: _End) -> None:
        mask = (0 if end.paused else self._poll.IN) | (self._poll.OUT if end.out else 0)
        self._poll.poller.modify(end.sock.fileno(), mask)

    def _finish(self, end: _End, flush: bool) -> None:
        """One side hung up: what it said before goes on to the other (briefly), then both
        close and whoever adopted the link is told (once: both ends lead here)."""
        if self._ends.get(end.sock.fileno()) is not end:
            return
        for side in (end, end.peer):
            fd = side.sock.fileno()
            if self._ends.pop(fd, None) is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._poll.poller.unregister(fd)
        if flush and end.peer.out:
            with contextlib.suppress(OSError):
                end.peer.sock.settimeout(FLUSH_TIMEOUT_S)
                end.peer.sock.sendall(end.peer.out)
        end.link.close()
        end.on_closed(end.link)
