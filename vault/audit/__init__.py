"""Tamper-evident audit log (see service module docstring)."""
