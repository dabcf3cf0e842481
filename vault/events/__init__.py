"""events (not built yet)."""
