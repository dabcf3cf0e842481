"""Staff sessions: idle and absolute timeouts, logout, CSRF on every form, the cookie."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session

from tests.staff.helpers import make_staff, session_cookie, signed_in
from vault.db import reader, utcnow
from vault.staff import sessions
from vault.staff.errors import StaffSessionRequired
from vault.staff.models import StaffSession
from vault.staff.pages import SESSION_COOKIE


def _row(runtime, cookie: str) -> StaffSession | None:
    with Session(reader(runtime.engine)) as s:
        return s.get(StaffSession, sessions._hash(cookie))


def test_only_the_hash_of_the_cookie_is_stored(runtime, client):
    staff = make_staff(runtime, "auditor")
    signed_in(client, staff)
    cookie = client.cookies[SESSION_COOKIE]
    with runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT id_hash FROM staff_session")).scalars().all()
    assert cookie not in rows and sessions._hash(cookie) in rows


def _open(session, settings, cookie, at):
    _, account = sessions.open_session(session=session, settings=settings, token=cookie, now=at)
    session.commit()
    return account


def test_activity_keeps_a_session_open_until_idle_for_too_long(runtime, session):
    staff = make_staff(runtime, "auditor")
    settings = runtime.settings
    cookie = session_cookie(runtime, staff)
    idle = timedelta(seconds=settings.staff_idle_seconds)
    almost = idle - timedelta(seconds=1)
    t = utcnow() + almost
    assert _open(session, settings, cookie, t).id == staff.id
    t += almost  # twice the idle limit since sign-in, but never idle for that long
    _open(session, settings, cookie, t)
    with pytest.raises(StaffSessionRequired):
        _open(session, settings, cookie, t + idle + timedelta(seconds=1))


def test_however_active_a_session_ends_at_its_absolute_end(runtime, session):
    staff = make_staff(runtime, "auditor")
    settings = runtime.settings
    cookie = session_cookie(runtime, staff)
    end = _row(runtime, cookie).expires_at
    assert end - utcnow() <= timedelta(seconds=settings.staff_session_max_seconds)
    step = timedelta(seconds=settings.staff_idle_seconds - 1)
    t = utcnow()
    while t + step < end:
        t += step
        _open(session, settings, cookie, t)
    with pytest.raises(StaffSessionRequired):
        _open(session, settings, cookie, end + timedelta(seconds=1))


def test_an_ended_session_sends_a_get_to_sign_in_and_refuses_a_post(runtime, client):
    staff = make_staff(runtime, "auditor")
    csrf = signed_in(client, staff)
    cookie = client.cookies[SESSION_COOKIE]
    with Session(reader(runtime.engine)) as s:
        row = s.get(StaffSession, sessions._hash(cookie))
        row.last_seen_at = utcnow() - timedelta(seconds=runtime.settings.staff_idle_seconds + 1)
        s.add(row)
        s.commit()
    r = client.get("/staff/audit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/staff"
    client.cookies.set(SESSION_COOKIE, cookie)
    r = client.post("/staff/audit/verify", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    # the start page shows the sign-in form again
    client.cookies.set(SESSION_COOKIE, cookie)
    r = client.get("/staff")
    assert r.status_code == 200 and 'action="/staff/login"' in r.text


def test_logout_ends_the_session_and_needs_csrf(runtime, client):
    staff = make_staff(runtime, "store")
    csrf = signed_in(client, staff)
    cookie = client.cookies[SESSION_COOKIE]
    assert client.post("/staff/logout", data={}).status_code == 403
    assert _row(runtime, cookie) is not None
    r = client.post("/staff/logout", data={"csrf_token": csrf})
    assert r.status_code == 200
    assert _row(runtime, cookie) is None
    client.cookies.set(SESSION_COOKIE, cookie)
    assert client.get("/staff/audit", follow_redirects=False).status_code == 303


def test_the_wrong_role_gets_a_403_page(runtime, client):
    signed_in(client, make_staff(runtime, "call_center"))
    r = client.get("/staff/audit", follow_redirects=False)
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    assert "Nicht für Ihre Rolle" in r.text


def test_pages_carry_the_csp_and_are_not_cached(runtime, client):
    signed_in(client, make_staff(runtime, "auditor"))
    for path in ("/staff", "/staff/audit"):
        r = client.get(path)
        assert r.status_code == 200
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "script-src" not in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-frame-options"] == "DENY"
        assert "<script" not in r.text


def test_language_from_query_then_cookie(client):
    r = client.get("/staff?lang=en")
    assert 'lang="en"' in r.text and "Sign in" in r.text
    cookies = r.headers.get_list("set-cookie")
    assert any("vault_lang=en" in c and "Path=/staff" in c for c in cookies)
    assert 'lang="en"' in client.get("/staff").text
    assert "Anmelden" in client.get("/staff?lang=de").text
