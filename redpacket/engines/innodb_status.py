"""InnoDB's transactions as ``SHOW ENGINE INNODB STATUS`` lists them, read live.

Why not information_schema.INNODB_TRX / INNODB_LOCK_WAITS: InnoDB serves those from
a cache it refreshes only when nobody has read it for 0.1 s, a rule shared by every
client of the server. Two programs polling it (two test workers, a monitoring agent)
can keep it from ever refreshing, and a lock wait would then go unseen for good.
The monitor output is built from the lock system on each call, so "is this session
waiting on a lock" and "is it inside a transaction" have a live answer here; only
the name of the holder is missing from it (MariaDB prints holders' locks only with
``innodb_status_output_locks``, a server-wide switch that is not the lab's to set).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TRANSACTION = re.compile(r"^---TRANSACTION ", re.M)
_THREAD = re.compile(r"\b(?:MariaDB|MySQL) thread id (\d+)")
_LOCK_STRUCTS = re.compile(r"\b(\d+) lock struct\(s\)")
_WAITING_FOR = re.compile(r"TRX HAS BEEN WAITING (\d+) (us|ms|SEC) FOR THIS LOCK")
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "SEC": 1.0}  # MariaDB 10.6+ prints us, MySQL whole SEC
_WAITED_TABLE = re.compile(r"FOR THIS LOCK TO BE GRANTED:\n.*? of table `([^`]*)`\.`([^`]*)`", re.S)


@dataclass(frozen=True)
class InnoDBTransaction:
    session_id: int
    active: bool  # started (an idle session shows "not started")
    lock_wait: bool  # waiting now for a row, gap or table lock
    lock_structs: int  # > 0: it holds or asks for locks
    waited_s: float | None  # how long it has waited for that lock, as the server counts
    waited_table: tuple[str, str] | None  # (database, table) of the lock it waits for


def transactions(observer: Any) -> dict[int, InnoDBTransaction]:
    """Every session's InnoDB transaction, by session (thread) id, as of now."""
    cursor = observer.cursor()
    cursor.execute("SHOW ENGINE INNODB STATUS")
    row = cursor.fetchone()
    cursor.close()
    return parse(str(row[2]) if row else "")


def parse(status: str) -> dict[int, InnoDBTransaction]:
    start = status.find("\nTRANSACTIONS\n")
    if start < 0:
        return {}
    section = status[start:]
    end = section.find("\n----------------------------\nEND OF INNODB MONITOR OUTPUT")
    section = section if end < 0 else section[:end]
    found: dict[int, InnoDBTransaction] = {}
    for block in _TRANSACTION.split(section)[1:]:
        thread = _THREAD.search(block)
        if thread is None:
            continue  # a background (purge, recovered) transaction: no session of ours
        header = block.split("\n", 1)[0]
        structs = _LOCK_STRUCTS.search(block)
        table = _WAITED_TABLE.search(block)
        waited = _WAITING_FOR.search(block)
        found[int(thread.group(1))] = InnoDBTransaction(
            session_id=int(thread.group(1)),
            active=", ACTIVE" in header,
            lock_wait=any(line.startswith("LOCK WAIT") for line in block.splitlines()),
            lock_structs=int(structs.group(1)) if structs else 0,
            waited_s=int(waited.group(1)) * _UNIT_S[waited.group(2)] if waited else None,
            waited_table=(table.group(1), table.group(2)) if table else None,
        )
    return found
