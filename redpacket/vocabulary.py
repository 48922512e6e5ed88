"""The lab's one vocabulary: the words for how a race ended, and what each means for the data.

The matrix, the stress and compare tables, JSON, the explanations and the HTML
pages say the same things about a race: ``correct``, ``duplicate``, ``missing``,
``refused`` (a failure, with its code; safe to retry when the code says a retry
can succeed) and ``lost race`` (the strategy's own check lost; retry). Each is
coloured by what it means for the data, not by whether something failed: a
refusal left the data right.
"""

from __future__ import annotations

import psycopg.errors

from redpacket.engines.mysql import SQLSTATES as MYSQL_SQLSTATES
from redpacket.retry import is_retryable

CORRECT, DUPLICATE, MISSING, REFUSED, LOST_RACE, STUCK = (
    "correct", "duplicate", "missing", "refused", "lost race", "stuck",
)  # fmt: skip

# word -> (what it means for the data, how it is drawn: good, bad, safe, odd)
MEANING: dict[str, tuple[str, str]] = {
    CORRECT: ("one red packet, and every caller was told the truth", "good"),
    DUPLICATE: ("more than one red packet for the order: the bug", "bad"),
    MISSING: ("no red packet, though no caller was refused", "bad"),
    REFUSED: ("a request was refused with an error code; the data is right", "safe"),
    LOST_RACE: ("the strategy's own check lost the race; the data is right, retry", "safe"),
    STUCK: ("the schedule could make no progress", "odd"),
}


def refusal(code: str) -> str:
    """``40001, safe to retry``, ``1213 (SQLSTATE 40001), safe to retry``, or the code alone:
    whether a retry can succeed is the code's."""
    shown = code_shown(code)
    return f"{shown}, safe to retry" if is_retryable(code) else shown


def code_shown(code: str) -> str:
    """A PostgreSQL SQLSTATE as it is; a MySQL error number with the SQLSTATE the server sends."""
    if code.isdigit() and len(code) == 4 and int(code) in MYSQL_SQLSTATES:
        return f"{code} (SQLSTATE {MYSQL_SQLSTATES[int(code)]})"
    return code


def sqlstate_name(sqlstate: str) -> str:
    """``40001 SerializationFailure``: the code with the name psycopg gives its class."""
    if sqlstate.isdigit() and len(sqlstate) == 4:
        return code_shown(sqlstate)
    try:
        return f"{sqlstate} {psycopg.errors.lookup(sqlstate).__name__}"
    except KeyError:
        return sqlstate
