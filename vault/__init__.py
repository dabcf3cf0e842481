"""Consent Vault: a consent- and privacy-aware customer data vault."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root of an editable install: the home of `policies/` and `migrations/`.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Where an installed wheel keeps them (setup.py copies them in as package data).
SHIPPED_DIR = Path(__file__).resolve().parent / "_shipped"


def shipped(name: str) -> Path:
    """``migrations`` or ``policies`` as shipped with the code: inside the installed package,
    else (editable install, source checkout) at the top of the repository."""
    inside = SHIPPED_DIR / name
    return inside if inside.is_dir() else PROJECT_ROOT / name
