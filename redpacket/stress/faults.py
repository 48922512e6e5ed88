"""Fault injection from outside the workers: sessions killed mid-transaction."""

from __future__ import annotations

import random
import threading

from redpacket.database.lab import Lab, Schema


class BackendKiller(threading.Thread):
    """Kills random worker sessions that are inside a transaction, ~``rate`` per second.

    It works from a connection of its own, the way an operator or a failover would
    (``pg_terminate_backend``, ``KILL CONNECTION``: the engine knows which); the
    workers see their session die and must cope.
    """

    def __init__(self, lab: Lab, schema: Schema, rate: float, seed: int = 1) -> None:
        super().__init__(name="redpacket-killer", daemon=True)
        self.lab = lab
        self.schema = schema
        self.rate = rate
        self.rng = random.Random(seed)
        self.killed = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def run(self) -> None:
        engine = self.lab.engine
        database = self.lab.url_of(self.schema).database or ""
        try:
            with self.lab.connect(self.schema, application="redpacket-killer") as conn:
                while not self._halt.wait(self.rng.expovariate(self.rate)):
                    sessions = engine.sessions_in_transaction(conn, database)
                    if sessions:
                        engine.kill(conn, self.rng.choice(sessions))
                        self.killed += 1
        except Exception as exc:
            if self.lab.engine.error_of(exc) is None:
                raise
            return  # the server went away; the workers will say so
