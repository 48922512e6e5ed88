"""redpacket: reproduce, explain, stress and fix the duplicate red-packet grant.

The public names: ``grant`` (one transaction of a strategy, with retries),
``GrantRequest``, ``RetryPolicy``, ``STRATEGIES`` and ``Isolation``.
"""

from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy
from redpacket.service import GrantRequest, grant
from redpacket.strategies import STRATEGIES

__all__ = ["STRATEGIES", "GrantRequest", "Isolation", "RetryPolicy", "grant"]
__version__ = "0.1.0"
