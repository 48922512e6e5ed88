"""Ctrl-C during a stress run, raised only where no request is half counted.

Python raises KeyboardInterrupt between any two bytecodes: inside ``Tally.record``
after a request was counted but before it joined the history, or inside ``finished``
before the worker was marked idle, so that closing the run counted it a second time
(CI saw "14 requests in the history, 13 attempts + 2 interrupted"). While a run is
driven, the signal only raises a flag; the loop raises KeyboardInterrupt itself
where it waits on its sockets, the one place where nothing is being counted, and
where a signal arriving mid-wait may raise at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class DeferredCtrlC:
    """The process's Ctrl-C while a run is driven: a flag, raised at the loop's waits."""

    def __init__(self) -> None:
        self.pending = False
        self.waiting = False  # the loop is in its wait: raising now cuts nothing in half

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True
        if self.waiting:
            self.waiting = False
            raise KeyboardInterrupt

    def raise_if_pending(self) -> None:
        if self.pending:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[DeferredCtrlC]:
        """Defer Ctrl-C while the block runs, when Python's own handler is the one in place.

        Only the main thread may set a handler, and a handler someone else installed (an
        embedding program's) is theirs: left alone, Ctrl-C behaves there as it did before.
        """
        self.pending = self.waiting = False
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield self
            return
        signal.signal(signal.SIGINT, self)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.waiting = False


CTRL_C = DeferredCtrlC()
