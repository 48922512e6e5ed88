"""A strategy's statements as libpq takes them — prepared once — and how they batch.

The batches are ``strategies.batching``'s, sent as one pipeline each, with BEGIN
in front of the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from redpacket.strategies import Strategy
from redpacket.strategies.batching import Batch, batches

if TYPE_CHECKING:
    from redpacket.stress.pipes import Pipe

BEGIN: Final = 0
STEP: Final = 1
COMMIT: Final = 2
ROLLBACK: Final = 3
# SQLSTATE classes that mean "this SQL is wrong" (syntax, undefined names, types), not
# "this session is in trouble": 42 syntax error or access rule violation, 22 data exception
_SQL_ERROR_CLASSES = frozenset({"42", "22"})
# One statement of a batch: (kind, step index or -1, prepared name, its parameters' names)
Item = tuple[int, int, bytes, tuple[str, ...]]
Items = tuple[Item, ...]
BEGIN_ITEM: Item = (BEGIN, -1, b"rp_begin", ())
COMMIT_ITEM: Item = (COMMIT, -1, b"rp_commit", ())
ROLLBACK_ITEM: Item = (ROLLBACK, -1, b"rp_rollback", ())


class ConnectionFailed(Exception):
    pass


class PipeError(Exception):
    """The connection failed or is gone (raised by both wires of ``pipes``)."""


class ServerGone(Exception):
    """No worker could reconnect for a few seconds: the server went away."""


class StatementRefused(Exception):
    """The server will not prepare one of the strategy's statements: the SQL is wrong.

    Not a connection problem and not worth a retry: a user's strategy file with a
    typo or an ambiguous parameter ends the run at once, naming the step.
    """


class Compiled:
    """A strategy's statements as libpq takes them, and how they batch."""

    def __init__(self, strategy: Strategy, begin_sql: str) -> None:
        self.strategy = strategy
        self.begin_sql = begin_sql.encode()
        self.names = [f"rp_{i}".encode() for i in range(len(strategy.steps))]
        self.sql = [step.numbered_sql[0].encode() for step in strategy.steps]
        self.params = [step.numbered_sql[1] for step in strategy.steps]
        # batches[start]: the items sent from step ``start`` on (strategies.batching);
        # open_batches: the same for a transaction that still has another order to grant.
        closing, open_ = batches(strategy)
        self.batches: list[Items] = [self._items(batch) for batch in closing]
        self.open_batches: list[Items] = [self._items(batch) for batch in open_]
        # What an attempt sends first: BEGIN with the first batch (built once, not per request)
        self.first_batch = (BEGIN_ITEM, *self.batches[0])
        self.first_open_batch = (BEGIN_ITEM, *self.open_batches[0])

    def prepare(self, pipe: Pipe) -> None:
        statements = [(b"rp_begin", self.begin_sql), (b"rp_commit", b"COMMIT")]
        statements += [(b"rp_rollback", b"ROLLBACK"), *zip(self.names, self.sql, strict=True)]
        for index, (name, sql) in enumerate(statements):
            ok, sqlstate, primary, message = pipe.prepare(name, sql)
            if ok:
                continue
            if index >= 3 and sqlstate[:2] in _SQL_ERROR_CLASSES:
                step = self.strategy.steps[index - 3].name
                raise StatementRefused(
                    f"strategy {self.strategy.name!r}, step {step}: the server refuses its SQL"
                    f" ({sqlstate}): {primary or message.strip()}"
                )
            raise ConnectionFailed(f"cannot prepare {name.decode()}: {message.strip()}")

    def _items(self, batch: Batch) -> Items:
        steps = tuple((STEP, i, self.names[i], self.params[i]) for i in batch.steps)
        return steps + ((COMMIT_ITEM,) if batch.commit else ())


def apply_settings(pipe: Pipe, settings: tuple[tuple[str, str], ...]) -> None:
    """Set session ``settings`` (name, value) through ``set_config``: values go as parameters."""
    for name, value in settings:
        refused = pipe.set_config(name.encode(), value.encode())
        if refused is not None:
            raise ConnectionFailed(f"cannot set {name}: {refused.strip()}")
