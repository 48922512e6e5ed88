"""redpacket: reproduce, explain, stress and fix the duplicate red-packet grant.

The public names: ``grant`` (one transaction of a strategy, with retries),
``GrantRequest``, ``RetryPolicy``, ``STRATEGIES`` and ``Isolation``. They are
loaded on first use: pytest loads the ``redpacket`` plugin in every run of any
project that has the package installed, and should not pay for SQLAlchemy then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redpacket.isolation import Isolation
    from redpacket.retry import RetryPolicy
    from redpacket.service import GrantRequest, grant
    from redpacket.strategies import STRATEGIES

_WHERE = {
    "Isolation": "redpacket.isolation", "RetryPolicy": "redpacket.retry",
    "GrantRequest": "redpacket.service", "grant": "redpacket.service",
    "STRATEGIES": "redpacket.strategies",
}  # fmt: skip

__all__ = ["STRATEGIES", "GrantRequest", "Isolation", "RetryPolicy", "grant"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'redpacket' has no attribute {name!r}")
