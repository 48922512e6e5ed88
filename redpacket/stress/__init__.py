"""Concurrent stress: many workers granting at once, and what each fix costs."""
