"""The limits fixtures (fake clock, apps built with other settings) for the token-endpoint tests."""

from tests.hardening.conftest import built, clock, limited  # noqa: F401
