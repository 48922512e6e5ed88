"""Parsing and printing database URLs without ever showing a password."""

from __future__ import annotations

import psycopg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from redpacket.errors import LabError

_ACCEPTED_SCHEMES = ("postgresql", "postgres")


def parse_url(raw: str) -> URL:
    """Turn a user's ``postgresql://`` URL into SQLAlchemy's psycopg 3 URL, or say why not."""
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError):
        raise LabError(
            "malformed database URL; expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        ) from None
    scheme, _, driver = url.drivername.partition("+")
    if scheme not in _ACCEPTED_SCHEMES:
        raise LabError(
            f"unsupported database URL scheme {scheme!r}; redpacket needs postgresql://..."
        )
    if driver not in ("", "psycopg"):
        raise LabError(f"unsupported driver {driver!r}; use postgresql:// (psycopg 3 is built in)")
    try:
        _ = url.port
    except ValueError:
        raise LabError("malformed database URL: the port is not a number") from None
    try:  # what libpq itself would refuse (spaces, unknown options), refused here in one line
        psycopg.conninfo.conninfo_to_dict(libpq_url(url))
    except psycopg.ProgrammingError as exc:
        raise LabError(f"malformed database URL: {scrub(str(exc), url)}") from None
    return url.set(drivername="postgresql+psycopg")


def mask(url: URL | str) -> str:
    """The URL as it may be printed: password replaced by ***, driver name dropped."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return "<unparseable URL>"
    return url.set(drivername="postgresql").render_as_string(hide_password=True)


def libpq_url(url: URL) -> str:
    """The URL as libpq / psycopg want it (no SQLAlchemy driver suffix), password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def scrub(text: str, url: URL) -> str:
    """Remove the URL's password from a message a driver produced, in case it quoted it."""
    if url.password:
        text = text.replace(str(url.password), "***")
    return text
