"""A database URL as the lab passes it around, without loading SQLAlchemy to hold one.

The lab was written on SQLAlchemy's ``URL``, but importing it imports all of
SQLAlchemy (0.17 s here): a cost that ``redpacket spec``, run one process per spec
file as pg_isolation_regress runs isolationtester, paid for every file without ever
making an SQLAlchemy engine. This is the same value, parsed and printed by the same
rules (``make_url``'s pattern, ``render_as_string``'s quoting), with the methods the
lab uses, named as SQLAlchemy names them; ``sqlalchemy()`` hands SQLAlchemy its own
URL where an engine is made, and ``from_sqlalchemy`` takes one back from a user's
engine. tests/test_url.py holds both directions to SQLAlchemy's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

QueryValue = str | tuple[str, ...]

# SQLAlchemy's make_url pattern (sqlalchemy/engine/url.py, _parse_url), so that a URL
# means here exactly what it means to the SQLAlchemy engine made from it.
_PATTERN = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True, repr=False)
class URL:
    """drivername://username:password@host:port/database?query, as SQLAlchemy's URL."""

    drivername: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: Mapping[str, QueryValue] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(
            (self.drivername, self.username, self.password, self.host, self.port,
             self.database, tuple(sorted(self.query.items())))
        )  # fmt: skip

    def set(self, **changes: Any) -> URL:
        """A copy with these fields changed (``query`` too: a mapping)."""
        if "query" in changes:
            changes["query"] = _frozen_query(changes["query"].items())
        if changes.get("port") is not None:
            changes["port"] = int(changes["port"])
        return replace(self, **changes)

    def update_query_dict(self, values: Mapping[str, QueryValue]) -> URL:
        return self.set(query={**self.query, **values})

    def difference_update_query(self, names: Iterable[str]) -> URL:
        gone = set(names)
        if not gone & set(self.query):
            return self
        return self.set(query={k: v for k, v in self.query.items() if k not in gone})

    def render_as_string(self, hide_password: bool = True) -> str:
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + ("***" if hide_password else quote(self.password, safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            text += "?" + "&".join(
                f"{quote_plus(key)}={quote_plus(element)}"
                for key in sorted(self.query)
                for element in _elements(self.query[key])
            )
        return text

    def __repr__(self) -> str:  # a URL in a traceback or a log line keeps its password
        return self.render_as_string()

    __str__ = __repr__

    def sqlalchemy(self) -> Any:
        """SQLAlchemy's own URL of the same value: for ``create_engine`` (loads SQLAlchemy)."""
        from sqlalchemy.engine import URL as SQLAlchemyURL

        return SQLAlchemyURL.create(
            self.drivername, self.username, self.password, self.host, self.port,
            self.database, dict(self.query),
        )  # fmt: skip


def make_url(raw: str) -> URL:
    """Parse a URL as SQLAlchemy's ``make_url`` does; ValueError when it cannot."""
    match = _PATTERN.match(raw)
    if match is None:
        raise ValueError("Could not parse the URL")
    parts = match.groupdict()
    pairs = parse_qsl(parts["query"]) if parts["query"] is not None else []
    port = parts["port"]
    return URL(
        drivername=parts["name"],
        username=_unquoted(parts["username"]),
        password=_unquoted(parts["password"]),
        host=parts["ipv4host"] or parts["ipv6host"],
        port=int(port) if port else None,
        database=_unquoted(parts["database"]),
        query=_frozen_query(pairs),
    )


def from_sqlalchemy(url: Any) -> URL:
    """The lab's URL of a user's SQLAlchemy engine (``engine.url``), or of one of its own."""
    if isinstance(url, URL):
        return url
    return URL(
        drivername=url.drivername, username=url.username,
        password=None if url.password is None else str(url.password), host=url.host,
        port=url.port, database=url.database, query=_frozen_query(url.query.items()),
    )  # fmt: skip


def _unquoted(part: str | None) -> str | None:
    return None if part is None else unquote(part)


def _elements(value: QueryValue) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def _frozen_query(pairs: Iterable[tuple[str, Any]]) -> Mapping[str, QueryValue]:
    """Repeated keys gather into a tuple, as SQLAlchemy gathers them."""
    query: dict[str, QueryValue] = {}
    for key, value in pairs:
        values = _elements(value) if not isinstance(value, list) else tuple(value)
        if key in query:
            query[key] = _elements(query[key]) + values
        else:
            query[key] = values if len(values) > 1 else values[0]
    return query
