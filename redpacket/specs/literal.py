"""Values written into SQL as literals, in the dialect of the engine that will read them.

A spec step is plain SQL text: isolationtester sends it with the simple query
protocol, no parameters. So a red-packet strategy's statement becomes a step by
writing its values in (SQLAlchemy renders each literal as the engine's dialect
needs), both when the lab runs a strategy at a schedule and when it exports the
run as a spec file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import literal
from sqlalchemy.engine import Dialect

_NAME = re.compile(r"(?<!:):([A-Za-z_]\w*)")


def sql_literal(value: Any, dialect: Dialect) -> str:
    return str(literal(value).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def bound(sql: str, params: Mapping[str, Any], dialect: Dialect) -> str:
    """``sql`` with each ``:name`` replaced by its value as an SQL literal."""
    return _NAME.sub(
        lambda m: sql_literal(params[m.group(1)], dialect) if m.group(1) in params else m.group(0),
        sql,
    )


def bound_positional(sql: str, values: Sequence[Any], dialect: Dialect) -> str:
    """A DB-API ``%s`` statement (an engine's ``setting``) with its values written in."""
    pieces = sql.split("%s")
    if len(pieces) != len(values) + 1:
        raise ValueError(f"{len(values)} values for {len(pieces) - 1} placeholders in {sql!r}")
    written = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        written += [sql_literal(value, dialect), piece]
    return "".join(written)
