"""Shared steps of the staff console tests: accounts, TOTP codes, sign-in, sessions."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pyotp
from fastapi.testclient import TestClient
from sqlmodel import Session

from vault.db import reader
from vault.runtime import Runtime
from vault.staff import accounts, sessions
from vault.staff.pages import LOGIN_COOKIE, SESSION_COOKIE

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Staff:
    id: str
    name: str
    role: str
    secret: str  # the TOTP secret, as the authenticator app holds it
    password: str = PASSWORD

    def code(self, steps: int = 0) -> str:
        """The code ``steps`` time steps from now (within the ±1 window when -1, 0 or 1)."""
        return pyotp.TOTP(self.secret).at(time.time() + 30 * steps)


def secret_of(uri: str) -> str:
    assert uri.startswith("otpauth://totp/")
    return pyotp.parse_uri(uri).secret


_n = 0


def make_staff(
    runtime: Runtime, role: str, *, name: str | None = None, store: str | None = None
) -> Staff:
    global _n
    _n += 1
    name = name or f"{role.replace('_', '-')}-{_n}-{int(time.time() * 1000) % 100000}"
    if role == "store" and store is None:
        store = "Köln-Ehrenfeld"
    with Session(reader(runtime.engine), expire_on_commit=False) as s:
        p = accounts.create_account(
            session=s,
            envelope=runtime.envelope,
            name=name,
            role=role,
            store=store,
            password=PASSWORD,
        )
        s.commit()
    return Staff(p.account.id, p.account.name, role, secret_of(p.totp_uri))


def session_cookie(runtime: Runtime, staff: Staff) -> str:
    """A live session for ``staff`` made through the service (no sign-in, no TOTP step used)."""
    with Session(reader(runtime.engine), expire_on_commit=False) as s:
        account = accounts.get_account(s, staff.name)
        started = sessions.start_session(session=s, settings=runtime.settings, account=account)
        s.commit()
    return started.token


def login_form(client: TestClient) -> str:
    """Open the sign-in form (sets the pre-sign-in cookie) and return its CSRF token."""
    r = client.get("/staff")
    assert r.status_code == 200, r.text
    assert LOGIN_COOKIE in client.cookies
    found = CSRF.search(r.text)
    assert found, r.text
    return found.group(1)


def sign_in(
    client: TestClient, staff: Staff, *, code: str | None = None, password: str | None = None
):
    token = login_form(client)
    return client.post(
        "/staff/login",
        data={
            "name": staff.name,
            "password": password if password is not None else staff.password,
            "code": code if code is not None else staff.code(),
            "csrf_token": token,
        },
        follow_redirects=False,
    )


def signed_in(client: TestClient, staff: Staff) -> str:
    """Sign in through the form; return the page CSRF token of the session."""
    r = sign_in(client, staff)
    assert r.status_code == 303, r.text
    assert SESSION_COOKIE in client.cookies
    r = client.get("/staff")
    assert r.status_code == 200
    return CSRF.search(r.text).group(1)
