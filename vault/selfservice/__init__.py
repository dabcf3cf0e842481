"""selfservice (not built yet)."""
