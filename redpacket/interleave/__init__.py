"""interleave."""
