"""Where PostgreSQL comes from, and the lab's own objects in it."""
