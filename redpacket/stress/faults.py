"""Fault injection from outside the workers: backends terminated mid-transaction."""

from __future__ import annotations

import random
import threading

import psycopg

WORKER_APPLICATION = "redpacket-stress"


class BackendKiller(threading.Thread):
    """Terminates random worker backends that are inside a transaction, ~``rate`` per second.

    It works from a connection of its own with ``pg_terminate_backend``, the way an
    operator or a failover would; the workers see their session die and must cope.
    """

    def __init__(self, conninfo: str, rate: float, seed: int = 1) -> None:
        super().__init__(name="redpacket-killer", daemon=True)
        self.conninfo = conninfo
        self.rate = rate
        self.rng = random.Random(seed)
        self.killed = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                while not self._halt.wait(self.rng.expovariate(self.rate)):
                    row = conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = %s AND datname = current_database()"
                        " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
                        " ORDER BY random() LIMIT 1",
                        (WORKER_APPLICATION,),
                    ).fetchone()
                    if row is not None and row[0]:
                        self.killed += 1
        except psycopg.Error:
            return  # the server went away; the workers will say so
