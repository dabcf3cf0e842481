"""dsr (not built yet)."""
