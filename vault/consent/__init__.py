"""Consent ledger: append-only per-purpose consent events, state projection, receipts."""
