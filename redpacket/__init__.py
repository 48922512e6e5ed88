"""redpacket: reproduce, explain, stress and fix the duplicate red-packet grant."""

from redpacket.isolation import Isolation

__all__ = ["Isolation"]
__version__ = "0.1.0"
