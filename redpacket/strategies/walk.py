"""One transaction's way through a strategy's steps: what every executor follows.

Its own module so that it can be compiled with the stress loop (setup.py's
HOT_LOOP): the loop engine makes a walk per grant request and reports every row to
it, and as interpreted Python those two calls were a tenth of the client's work
per transaction (``closes_with_commit`` too, asked once a transaction).
"""

from __future__ import annotations

from typing import Any

from redpacket.strategies.steps import COMMITTING, End, Step, Strategy, Then


def closes_with_commit(end: End | None, aborted: bool) -> bool:
    """COMMIT only a decision to commit, on a transaction no statement has aborted."""
    return end is not None and not aborted and end in COMMITTING


class Walk:
    """One transaction's way through a strategy's steps: the current step and the context.

    The caller executes ``walk.step`` however it likes (blocking SQLAlchemy, a
    scheduler thread, a non-blocking libpq connection) and reports the result
    with ``row`` or ``error``; the walk answers how the transaction ends, or None
    to go on with the new ``walk.step``.
    """

    __slots__ = ("context", "ended", "index", "strategy")

    def __init__(self, strategy: Strategy, context: dict[str, Any]) -> None:
        self.strategy = strategy
        self.context = context
        self.index = 0
        self.ended: End | None = None

    @property
    def step(self) -> Step:
        return self.strategy.steps[self.index]

    def row(self, row: tuple[Any, ...] | None) -> End | None:
        step = self.strategy.steps[self.index]
        if row is None:
            then = step.on_no_row
        else:
            then = step.on_row
            if step.capture is not None:
                self.context[step.capture] = row[0]
        if then.__class__ is End:  # the common way a step ends it, taken without a call
            self.ended = then
            return then
        return self._follow(then)

    def error(self, sqlstate: str | None) -> End | None:
        """The step raised ``sqlstate``: the end it means, or None if the strategy lets it fail."""
        handled = self.step.on_error.get(sqlstate or "")
        if handled is not None:
            self.ended = handled
        return handled

    def _follow(self, then: Then) -> End | None:
        if isinstance(then, End):
            self.ended = then
            return then
        self.index = self.index + 1 if then.step is None else self.strategy.index_of(then.step)
        if self.index >= len(self.strategy.steps):
            raise RuntimeError(f"strategy {self.strategy.name!r} ran past its last step")
        return None
