"""Sign-in at /staff: password + TOTP, replay, lockout, disabled accounts, one answer for every
refusal, the sign-in form's CSRF cookie and the rate limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.staff.helpers import CSRF, Staff, login_form, make_staff, sign_in
from vault.audit.models import AuditEvent
from vault.config import Settings
from vault.db import reader, utcnow
from vault.runtime import Runtime
from vault.staff.models import StaffAccount
from vault.staff.pages import LOGIN_COOKIE, SESSION_COOKIE


def _events(runtime, action: str) -> list[AuditEvent]:
    with Session(reader(runtime.engine)) as s:
        return list(
            s.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
            .scalars()
            .all()
        )


def _account(runtime, staff: Staff) -> StaffAccount:
    with Session(reader(runtime.engine)) as s:
        return s.get(StaffAccount, staff.id)


def _refusal_page(r) -> str:
    """The refusal's page without its per-form CSRF token (the rest must be the same bytes)."""
    assert r.status_code == 401, r.text
    return CSRF.sub("", r.text)


def test_right_password_and_code_sign_in(runtime, client):
    staff = make_staff(runtime, "auditor")
    r = sign_in(client, staff)
    assert r.status_code == 303 and r.headers["location"] == "/staff"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/staff" in cookie and "SameSite=strict" in cookie
    assert SESSION_COOKIE in client.cookies
    assert LOGIN_COOKIE not in client.cookies  # the pre-sign-in nonce is spent
    home = client.get("/staff")
    assert home.status_code == 200 and "/staff/audit" in home.text
    assert "/staff/office" not in home.text and "/staff/customers" not in home.text
    [event] = _events(runtime, "staff.login")
    assert (event.actor_type, event.actor_id, event.outcome) == ("staff", staff.id, "success")


def test_each_refusal_answers_the_same_page(runtime, client):
    staff = make_staff(runtime, "privacy_officer")
    unknown = _refusal_page(
        sign_in(client, Staff("stnobody", "nobody-here", "auditor", staff.secret))
    )
    wrong_password = _refusal_page(sign_in(client, staff, password="not the password at all"))
    wrong_code = _refusal_page(sign_in(client, staff, code="000000"))
    assert unknown == wrong_password == wrong_code
    assert "not right" in unknown or "stimmen nicht" in unknown
    reasons = [(e.actor_type, e.actor_id, e.reason) for e in _events(runtime, "staff.login_failed")]
    assert reasons == [
        ("staff", None, "unknown_account"),
        ("staff", staff.id, "wrong_credentials"),
        ("staff", staff.id, "wrong_credentials"),
    ]
    assert SESSION_COOKIE not in client.cookies


def test_a_code_is_accepted_once(runtime, client):
    staff = make_staff(runtime, "auditor")
    code = staff.code()
    assert sign_in(client, staff, code=code).status_code == 303
    client.cookies.clear()
    assert sign_in(client, staff, code=code).status_code == 401  # the same code again
    assert sign_in(client, staff, code=staff.code(-1)).status_code == 401  # an older step
    assert _events(runtime, "staff.login_failed")[-2].reason == "replayed_code"
    assert sign_in(client, staff, code=staff.code(1)).status_code == 303  # the next step


def test_codes_outside_one_step_either_side_are_refused(runtime, client):
    staff = make_staff(runtime, "auditor")
    assert sign_in(client, staff, code=staff.code(-3)).status_code == 401
    assert sign_in(client, staff, code=staff.code(3)).status_code == 401
    assert sign_in(client, staff, code=staff.code(-1)).status_code == 303


def test_lockout_after_failures_refuses_even_the_right_credentials(runtime, client):
    staff = make_staff(runtime, "auditor")
    limit = runtime.settings.staff_lockout_failures
    for _ in range(limit):
        assert sign_in(client, staff, password="wrong password, again").status_code == 401
    account = _account(runtime, staff)
    assert account.locked_until is not None and account.locked_until > utcnow()
    assert sign_in(client, staff).status_code == 401
    assert _events(runtime, "staff.login_failed")[-1].reason == "locked"
    # once the lock has run out the account signs in again
    with Session(reader(runtime.engine)) as s:
        row = s.get(StaffAccount, staff.id)
        row.locked_until = utcnow() - timedelta(seconds=1)
        s.add(row)
        s.commit()
    assert sign_in(client, staff, code=staff.code(1)).status_code == 303


def test_a_disabled_account_cannot_sign_in(runtime, client):
    staff = make_staff(runtime, "auditor")
    with Session(reader(runtime.engine)) as s:
        row = s.get(StaffAccount, staff.id)
        row.disabled_at = utcnow()
        s.add(row)
        s.commit()
    assert sign_in(client, staff).status_code == 401
    assert _events(runtime, "staff.login_failed")[-1].reason == "disabled"


def test_the_sign_in_form_needs_its_csrf_cookie_and_token(runtime, client):
    staff = make_staff(runtime, "auditor")
    token = login_form(client)
    data = {"name": staff.name, "password": staff.password, "code": staff.code()}
    assert client.post("/staff/login", data=data, follow_redirects=False).status_code == 403
    bad = {**data, "csrf_token": "0" * 64}
    assert client.post("/staff/login", data=bad, follow_redirects=False).status_code == 403
    nonce = client.cookies[LOGIN_COOKIE]
    client.cookies.clear()  # a token without its cookie (another site's form)
    ok = {**data, "csrf_token": token}
    assert client.post("/staff/login", data=ok, follow_redirects=False).status_code == 403
    client.cookies.set(LOGIN_COOKIE, nonce)
    assert client.post("/staff/login", data=ok, follow_redirects=False).status_code == 303
    assert _events(runtime, "staff.login_failed") == []  # refused before any look-up


@pytest.fixture
def tight(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"rate_limit_staff_login_name": "3/hour", "staff_lockout_failures": 50}
    )


def test_failures_per_name_are_rate_limited_known_or_not(tight, template):
    from fastapi.testclient import TestClient

    from vault.app import create_app

    runtime = Runtime.build(tight)
    try:
        staff = make_staff(runtime, "auditor")
        with TestClient(create_app(runtime)) as client:
            for who in (staff, Staff("stx", "no-such-name", "auditor", staff.secret)):
                for _ in range(3):
                    assert sign_in(client, who, password="wrong password!!").status_code == 401
                r = sign_in(client, who)
                assert r.status_code == 429 and "retry-after" in r.headers
                assert "text/html" in r.headers["content-type"]
    finally:
        runtime.engine.dispose()


@pytest.mark.parametrize(
    "role,shown,hidden",
    [
        ("store", "/staff/customers", "/staff/audit"),
        ("call_center", "/staff/customers", "/staff/office"),
        ("privacy_officer", "/staff/office", "/staff/customers"),
        ("auditor", "/staff/audit", "/staff/office"),
    ],
)
def test_the_start_page_lists_what_the_role_may_do(runtime, client, role, shown, hidden):
    staff = make_staff(runtime, role)
    assert sign_in(client, staff).status_code == 303
    r = client.get("/staff?lang=en")
    assert f'href="{shown}"' in r.text and f'href="{hidden}"' not in r.text
    if role == "store":
        assert "Store: Köln-Ehrenfeld." in r.text
