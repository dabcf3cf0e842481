"""``built``: apps made with other settings (limits), as in the hardening tests."""

from tests.hardening.conftest import built  # noqa: F401
