"""Fault injection from outside the workers: sessions killed mid-transaction."""

from __future__ import annotations

import random
import threading
import time

from redpacket.database.lab import Lab, Schema


class BackendKiller(threading.Thread):
    """Kills random worker sessions that are inside a transaction, ~``rate`` per second.

    It works from a connection of its own, the way an operator or a failover would
    (``pg_terminate_backend``, ``KILL CONNECTION``: the engine knows which); the
    workers see their session die and must cope.

    With ``window_s`` (a run of ``--duration``) it kills only while requests are being
    started. After that the run drains: the last requests in flight would be the only
    sessions left in a transaction and take every kill, each retry killed again, until a
    request ran out of retries. That failure would be the killer's aim, not the fix's.
    """

    def __init__(
        self,
        lab: Lab,
        schema: Schema,
        rate: float,
        seed: int = 1,
        window_s: float | None = None,
    ) -> None:
        super().__init__(name="redpacket-killer", daemon=True)
        self.lab = lab
        self.schema = schema
        self.rate = rate
        self.window_s = window_s
        self.rng = random.Random(seed)
        self.killed = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def run(self) -> None:
        engine = self.lab.engine
        database = self.lab.url_of(self.schema).database or ""
        closes = None if self.window_s is None else time.monotonic() + self.window_s
        try:
            with self.lab.connect(self.schema, application="redpacket-killer") as conn:
                while not self._halt.wait(self.rng.expovariate(self.rate)):
                    if closes is not None and time.monotonic() >= closes:
                        return
                    sessions = engine.sessions_in_transaction(conn, database)
                    if sessions:
                        engine.kill(conn, self.rng.choice(sessions))
                        self.killed += 1
        except Exception as exc:
            if self.lab.engine.error_of(exc) is None:
                raise
            return  # the server went away; the workers will say so
