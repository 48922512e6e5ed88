"""Rendering results for people (Rich tables) — the core never prints."""
