"""Race the user's own functions: forced interleavings, every schedule, and a hammer."""
