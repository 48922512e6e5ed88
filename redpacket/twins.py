"""A fast implementation and its twin, chosen by an environment variable.

The libpq C wire and psycopg's, the MySQL C wire and its Python twin, libpq through
ctypes and psycopg.pq: each fast one is used where it was built or loads, its twin
elsewhere, and a variable forces either (the tests hold each pair to the same
answers; a figure is measured on a named one). One rule for all three, so that they
refuse a bad setting, and a fast one that is missing, in the same words.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from redpacket.errors import LabError

T = TypeVar("T")


def chosen(
    variable: str, fast: tuple[str, Callable[[], T | None]], twin: tuple[str, Callable[[], T]],
    missing: str,
) -> T:  # fmt: skip
    """``fast``'s loader's answer unless ``variable`` names ``twin`` or the loader finds
    nothing (None); a setting naming ``fast`` when it is missing is refused with
    ``missing`` (what is not there)."""
    fast_name, load_fast = fast
    twin_name, load_twin = twin
    setting = os.environ.get(variable, "")
    if setting not in ("", fast_name, twin_name):
        raise LabError(f"{variable} is {fast_name!r} or {twin_name!r}, not {setting!r}")
    found = None if setting == twin_name else load_fast()
    if found is not None:
        return found
    if setting == fast_name:
        raise LabError(f"{variable}={fast_name}, but {missing}")
    return load_twin()
