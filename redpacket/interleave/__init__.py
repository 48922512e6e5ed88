"""Deterministic interleavings: sessions stepped in an exact order, waits seen from the server."""
