"""The database engines the lab speaks, one module each, listed here explicitly.

The core asks the engine of the URL in hand (``engine_of``), never which engine
it is; a new engine is one new module with an ``ENGINE`` and one line below.
"""

from __future__ import annotations

from redpacket.engines import mysql, postgresql
from redpacket.engines.base import Engine, FaultCodes, Lock, LockConflict, Read, ServerError

ENGINES: dict[str, Engine] = {engine.name: engine for engine in (postgresql.ENGINE, mysql.ENGINE)}
SCHEMES: dict[str, Engine] = {
    scheme: engine for engine in ENGINES.values() for scheme in engine.schemes
}


def engine_named(name: str) -> Engine:
    return ENGINES[name]


__all__ = [
    "ENGINES",
    "SCHEMES",
    "Engine",
    "FaultCodes",
    "Lock",
    "LockConflict",
    "Read",
    "ServerError",
    "engine_named",
]
