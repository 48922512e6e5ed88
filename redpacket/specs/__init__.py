"""Isolation test specs: PostgreSQL's isolationtester format, run by the lab's scheduler."""
