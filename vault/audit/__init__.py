"""Tamper-evident audit log: ``record`` writes, ``seal`` chains, ``verify`` checks, ``purge``
keeps the retention period, ``query`` reads; the design is in those modules' docstrings."""
