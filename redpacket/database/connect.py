"""Connections to the server, and their failures as one line a person can act on.

Every connection the lab opens outside SQLAlchemy goes through ``connect``; every
SQLAlchemy connect goes through ``translate_connect_errors``. Either way a failure
to connect is a ``LabError`` naming the server without its password, never a
traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from redpacket.database.urls import libpq_url, mask, scrub
from redpacket.errors import LabError

CONNECT_TIMEOUT_S = 5


@contextlib.contextmanager
def connect(
    url: URL, *, autocommit: bool = False
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A psycopg connection whose connection failure is a one-line, password-free LabError."""
    try:
        conn = psycopg.connect(
            libpq_url(url), autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
        )
    except psycopg.OperationalError as exc:
        raise cannot_connect(url, exc) from None
    with conn:
        yield conn


def cannot_connect(url: URL, exc: BaseException | None) -> LabError:
    return LabError(f"cannot connect to {mask(url)}: {first_line(str(exc), url)}")


def first_line(message: str, url: URL) -> str:
    lines = [line.strip() for line in scrub(message, url).splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


@contextlib.contextmanager
def translate_connect_errors(url: URL) -> Iterator[None]:
    """Turn SQLAlchemy's wrapped connection failures into the same one-line LabError."""
    try:
        yield
    except DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError):
            raise cannot_connect(url, exc.orig) from None
        raise
