"""Connections to the server, and their failures as one line a person can act on.

Every connection the lab opens outside SQLAlchemy goes through ``connect``; every
SQLAlchemy connect goes through ``translate_connect_errors``. Either way a failure
to connect is a ``LabError`` naming the server without its password, never a
traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from redpacket.database.url import URL
from redpacket.database.urls import engine_of, mask, scrub
from redpacket.engines.base import CONNECT_TIMEOUT_S
from redpacket.errors import LabError

__all__ = [
    "CONNECT_TIMEOUT_S",
    "cannot_connect",
    "connect",
    "first_line",
    "require_server",
    "translate_connect_errors",
]


@contextlib.contextmanager
def connect(url: URL, *, autocommit: bool = False, application: str = "redpacket") -> Iterator[Any]:
    """A DB-API connection to ``url``; failing to connect is a one-line, password-free LabError."""
    engine = engine_of(url)
    try:
        conn = engine.connect(url, autocommit=autocommit, application=application)
    except LabError:
        raise
    except Exception as exc:
        error = engine.error_of(exc)
        if error is None and not isinstance(exc, OSError):
            raise
        raise cannot_connect(url, exc) from None
    try:
        yield conn
        if not autocommit:
            conn.commit()
    except BaseException:
        if not autocommit:
            with contextlib.suppress(Exception):
                conn.rollback()
        raise
    finally:
        conn.close()


def require_server(url: URL) -> None:
    """The server answers at ``url``, or the command stops here in one line (before it
    listens, starts programs or prints anything else)."""
    with connect(url, autocommit=True):
        pass


def cannot_connect(url: URL, exc: BaseException | None) -> LabError:
    """The server's (or the driver's) own message, whole: the engine knows where its driver
    keeps it (MySQL's drivers: ``(number, message)``), never a cut of the exception's repr."""
    error = engine_of(url).error_of(exc) if exc is not None else None
    message = error.message if error is not None else str(exc)
    return LabError(f"cannot connect to {mask(url)}: {first_line(message, url)}")


def first_line(message: str, url: URL) -> str:
    lines = [line.strip() for line in scrub(message, url).splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


@contextlib.contextmanager
def translate_connect_errors(url: URL) -> Iterator[None]:
    """Turn SQLAlchemy's wrapped connection failures into the same one-line LabError."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import OperationalError as SAOperationalError

    try:
        yield
    except DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc, SAOperationalError):
            raise cannot_connect(url, exc.orig) from None  # statement errors never get here
        raise
