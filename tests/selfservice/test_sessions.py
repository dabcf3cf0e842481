"""The self-service session's CSRF token."""

from __future__ import annotations

from vault.selfservice import sessions
from vault.selfservice.errors import CsrfRefused


def test_csrf_token_is_bound_to_the_session():
    a, b = "session-a", "session-b"
    assert sessions.csrf_token(a) != sessions.csrf_token(b)
    sessions.check_csrf(a, sessions.csrf_token(a))
    for bad in (None, "", sessions.csrf_token(b)):
        try:
            sessions.check_csrf(a, bad)
        except CsrfRefused:
            continue
        raise AssertionError("accepted a wrong CSRF token")
