"""Consent Vault: a consent- and privacy-aware customer data vault."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root of an editable install: the home of `policies/` and `migrations/`.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
