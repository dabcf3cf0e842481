"""Consent-gated data access for internal apps."""
