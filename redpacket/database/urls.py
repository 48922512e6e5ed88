"""Parsing and printing database URLs without ever showing a password.

The URL's scheme names the engine (``postgresql://``, ``mysql://``, ``mariadb://``);
the engine module checks the rest. Printed URLs keep the scheme the user knows and
mask the password.
"""

from __future__ import annotations

from redpacket.database.url import URL, make_url
from redpacket.engines import SCHEMES, Engine
from redpacket.errors import LabError

EXPECTED = (
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE or mysql://USER[:PASSWORD]@HOST[:PORT]/"
)


def parse_url(raw: str) -> URL:
    """Turn a user's URL into the lab's URL for the engine's driver, or say why not."""
    try:
        url = make_url(raw.strip())
    except ValueError:
        raise LabError(f"malformed database URL; expected {EXPECTED}") from None
    scheme, _, driver = url.drivername.partition("+")
    engine = SCHEMES.get(scheme)
    if engine is None:
        raise LabError(
            f"unsupported database URL scheme {scheme!r}; redpacket speaks postgresql://,"
            " mysql:// and mariadb://"
        )
    if driver and f"{engine.driver.partition('+')[0]}+{driver}" not in engine.drivers:
        raise LabError(
            f"unsupported driver {driver!r}; use {scheme}:// (the lab brings its own driver)"
        )
    url = url.set(drivername=engine.driver)
    engine.check_url(url)
    return url


def engine_of(url: URL) -> Engine:
    scheme = url.drivername.partition("+")[0]
    engine = SCHEMES.get(scheme)
    if engine is None:
        raise LabError(f"unsupported database URL scheme {scheme!r}")
    return engine


def _plain(url: URL) -> URL:
    """The URL under the scheme the user knows (no driver suffix, no lab-internal options)."""
    return url.set(drivername=url.drivername.partition("+")[0]).difference_update_query(
        ["search_path"]
    )


def mask(url: URL | str) -> str:
    """The URL as it may be printed: password replaced by ***, driver name dropped."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ValueError:
            return "<unparseable URL>"
    return _plain(url).render_as_string(hide_password=True)


def plain_url(url: URL) -> str:
    """The URL as a user would write it, password included: to hand to another process."""
    return _plain(url).render_as_string(hide_password=False)


def scrub(text: str, url: URL) -> str:
    """Remove the URL's password from a message a driver produced, in case it quoted it."""
    if url.password:
        text = text.replace(str(url.password), "***")
    return text
