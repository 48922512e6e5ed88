"""Which round trips are a driver's housekeeping, not steps of the race.

Drivers talk before and between the statements of the code: pgjdbc's and Connector/J's
start-up queries, ``SET`` of a session setting, ``SHOW``, ``SELECT @@tx_isolation``,
``BEGIN``. Counted as steps they would multiply the schedules by what nobody races on.
A round trip is housekeeping when every statement in it can neither take a snapshot
nor a lock, so running it as soon as it arrives, rather than when the step after it is
released, changes nothing another session can see:

- ``SET``, ``SHOW``, ``RESET``, ``DISCARD``, ``DEALLOCATE``, ``BEGIN`` / ``START
  TRANSACTION`` (PostgreSQL takes a transaction's snapshot at its first statement after
  BEGIN, InnoDB at its first consistent read), but not ``WITH CONSISTENT SNAPSHOT`` nor
  ``SET TRANSACTION SNAPSHOT``, which do take one, nor MySQL's ``SET autocommit`` inside a
  transaction, which commits it;
- a ``SELECT`` of server variables (``@@...``), literals and functions that only report
  or set the session (``version()``, ``current_setting(...)``, ``DATABASE()``, Django's
  ``set_config('TimeZone', ...)``) with no ``FROM``, outside a transaction block: inside
  one, PostgreSQL would fix the snapshot there.

Anything else is a step: a statement on a table, a lock function (``GET_LOCK``,
``pg_advisory_xact_lock``), COMMIT and ROLLBACK.
"""

from __future__ import annotations

import re

_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)
_QUIET = re.compile(
    r"^(set|show|reset|discard|deallocate|use|begin|start\s+transaction)\b(?!.*\bsnapshot\b)",
    re.I | re.S,
)
_REPORTING = (
    r"version|current_setting|current_schema|current_database|current_user|session_user|user"
    r"|database|schema|connection_id|pg_backend_pid|txid_current_if_assigned|now"
    r"|current_timestamp|last_insert_id|set_config"
)
_SELECT_ONLY = re.compile(
    rf"^select\s+(?:(?:@@[\w.]+|'[^']*'|\d+|true|false|null|(?:{_REPORTING})\s*\([^()]*\)"
    rf"|current_user|session_user|current_timestamp)(?:\s+as\s+[\w\"`]+)?\s*,?\s*)+$",
    re.I,
)
_BEGINS = re.compile(r"^(begin|start\s+transaction)\b", re.I)
_AUTOCOMMIT = re.compile(r"^set\s+(?:session\s+|@@(?:session\.)?)?autocommit\b", re.I)


def statement_of(sql: str) -> str:
    """The statement without comments, surrounding space and a trailing semicolon."""
    return _COMMENTS.sub(" ", sql).strip().rstrip(";").strip()


def is_housekeeping(statements: tuple[str, ...], in_transaction: bool) -> bool:
    """True when the round trip carrying ``statements`` is no step of a race."""
    cleaned = [statement_of(s) for s in statements]
    cleaned = [s for s in cleaned if s]
    opens = any(_BEGINS.match(s) for s in cleaned)
    for sql in cleaned:
        if in_transaction and _AUTOCOMMIT.match(sql):
            return False  # MySQL: turning autocommit on commits the open transaction
        if _QUIET.match(sql):
            continue
        if _SELECT_ONLY.match(sql) and not in_transaction and not opens:
            continue
        return False
    return True
