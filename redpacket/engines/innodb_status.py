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
from dataclasses import dataclass, replace
from typing import Any

from redpacket.engines.base import Lock, LockConflict

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


_DEADLOCK = "\nLATEST DETECTED DEADLOCK\n"
_PART = re.compile(r"^\*\*\* (.*)$", re.M)
# a transaction that has written nothing has no id yet: InnoDB prints its address, and
# "trx id 0" on its locks
_TRX_HEADER = re.compile(r"^TRANSACTION (?:(\d+)|\(0x[0-9a-f]+\)),", re.M)
_VICTIM = re.compile(r"WE ROLL BACK TRANSACTION \((\d+)\)")
_RECORD_LOCK = re.compile(
    r"^RECORD LOCKS .*? index (\S+) of table `[^`]*`\.`([^`]*)`"
    r" trx id (\d+) lock[_ ]mode (\S+)(.*)$"
    r"(?:\nRecord lock, heap no (\d+) )?",
    re.M,
)
_TABLE_LOCK = re.compile(r"^TABLE LOCK table `[^`]*`\.`([^`]*)` trx id (\d+) lock mode (\S+)", re.M)


def latest_deadlock(observer: Any, victim: int) -> tuple[LockConflict, ...]:
    """The locks of the last deadlock InnoDB broke, if ``victim`` (a session id) is the
    transaction it rolled back; nothing when the latest deadlock is someone else's (the
    server keeps only the last one, for every client)."""
    cursor = observer.cursor()
    cursor.execute("SHOW ENGINE INNODB STATUS")
    row = cursor.fetchone()
    cursor.close()
    return deadlock_of(str(row[2]) if row else "", victim)


def deadlock_of(status: str, victim: int) -> tuple[LockConflict, ...]:
    start = status.find(_DEADLOCK)
    if start < 0:
        return ()
    section = status[start + len(_DEADLOCK) :]
    section = (
        section[: section.find("\nTRANSACTIONS\n")] if "\nTRANSACTIONS\n" in section else section
    )
    parts = _PART.split(section)  # [before, heading, body, heading, body, ...]
    transactions: dict[str, tuple[int, int]] = {}  # "(1)" -> (trx id, thread id)
    wanted: dict[str, Lock] = {}
    held: list[Lock] = []
    current = ""
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        number = re.match(r"(\(\d+\)) TRANSACTION:", heading)
        if number:
            trx, thread = _TRX_HEADER.search(body), _THREAD.search(body)
            if trx is None or thread is None:
                return ()
            current = number.group(1)
            transactions[current] = (int(trx.group(1) or 0), int(thread.group(1)))
            continue
        locks = _locks(body)
        if "WAITING FOR THIS LOCK" in heading and locks and current:
            wanted[current] = locks[0]
        elif "CONFLICTING WITH" in heading or "HOLDS THE LOCK" in heading:
            held += locks
    victim_said = _VICTIM.search(section)
    if victim_said is None or transactions.get(f"({victim_said.group(1)})", (0, 0))[1] != victim:
        return ()
    threads = dict(transactions.values())
    conflicts = []
    for name, lock in wanted.items():
        own, session = transactions[name]
        others = tuple(
            replace(h, holder=threads.get(h.holder, 0))
            for h in dict.fromkeys(held)
            if h.holder != own and (h.table, h.index) == (lock.table, lock.index)
        )
        conflicts.append(LockConflict(session, replace(lock, holder=session), others))
    return tuple(conflicts)


def _locks(body: str) -> list[Lock]:
    """Locks in the order printed, ``holder`` still the transaction id."""
    found: list[tuple[int, Lock]] = []
    for m in _RECORD_LOCK.finditer(body):
        flags = m.group(5)
        kind = (
            "insert intention" if "insert intention" in flags
            else "gap" if "locks gap before rec" in flags
            else "record" if "locks rec but not gap" in flags
            else "next-key"
        )  # fmt: skip
        lock = Lock(int(m.group(3)), m.group(4), kind, m.group(2), m.group(1), m.group(6) == "1")
        found.append((m.start(), lock))
    for m in _TABLE_LOCK.finditer(body):
        found.append((m.start(), Lock(int(m.group(2)), m.group(3), "table", m.group(1))))
    return [lock for _, lock in sorted(found, key=lambda pair: pair[0])]
