"""Staff console sessions, and the CSRF tokens of its forms.

- After a sign-in (:func:`start_session`) the browser holds 32 random bytes in an HttpOnly
  cookie (``Path=/staff``); the table keeps only their SHA-256, the account, ``last_seen_at``
  (idle timeout, ``VAULT_STAFF_IDLE_SECONDS``) and an absolute ``expires_at``
  (``VAULT_STAFF_SESSION_MAX_SECONDS``). Every request (:func:`open_session`) re-checks both
  and the account, so a disabled account's session stops on its next request.
- The CSRF token of a session is ``HMAC-SHA256(session token, label)``: per session, never
  stored. The sign-in form, which has no session yet, is protected the same way by a random
  pre-sign-in cookie (:func:`login_csrf`, double submit).

Services never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.config import Settings
from vault.db import utcnow
from vault.provenance import Caller
from vault.staff.errors import StaffCsrfRefused, StaffSessionRequired
from vault.staff.models import StaffAccount, StaffSession

_CSRF_LABEL = b"consent-vault/staff/csrf/v1"
_LOGIN_LABEL = b"consent-vault/staff/login-csrf/v1"
MAX_TOKEN = 200


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def purge_expired(*, session: Session, settings: Settings, now: datetime) -> None:
    idle = now - timedelta(seconds=settings.staff_idle_seconds)
    session.execute(
        delete(StaffSession).where(
            or_(StaffSession.expires_at < now, StaffSession.last_seen_at < idle)
        )
    )


@dataclass(frozen=True)
class Started:
    token: str  # the cookie value; never stored
    row: StaffSession

    def __repr__(self) -> str:
        return f"Started(staff_id={self.row.staff_id!r}, ***)"


def start_session(
    *, session: Session, settings: Settings, account: StaffAccount, now: datetime | None = None
) -> Started:
    now = now or utcnow()
    purge_expired(session=session, settings=settings, now=now)
    token = secrets.token_urlsafe(32)
    row = StaffSession(
        id_hash=_hash(token),
        staff_id=account.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.staff_session_max_seconds),
    )
    session.add(row)
    session.flush()
    return Started(token, row)


def open_session(
    *, session: Session, settings: Settings, token: str | None, now: datetime | None = None
) -> tuple[StaffSession, StaffAccount]:
    """The live session behind a cookie value and its account, ``last_seen_at`` moved to now.
    Unknown, idle too long, past its end, or of a disabled account: StaffSessionRequired."""
    now = now or utcnow()
    if not token or len(token) > MAX_TOKEN:
        raise StaffSessionRequired()
    row = session.get(StaffSession, _hash(token))
    if row is None:
        raise StaffSessionRequired()
    idle_limit = row.last_seen_at + timedelta(seconds=settings.staff_idle_seconds)
    account = session.get(StaffAccount, row.staff_id)
    if row.expires_at < now or idle_limit < now or account is None or account.disabled_at:
        raise StaffSessionRequired()  # the row goes with the next purge
    row.last_seen_at = now
    session.add(row)
    session.flush()
    return row, account


def end_session(*, session: Session, token: str, by: Caller) -> None:
    """Logout: the row goes, so the cookie value is worthless from now on."""
    session.execute(delete(StaffSession).where(StaffSession.id_hash == _hash(token)))
    audit_record.record(session=session, by=by, action=AuditAction.STAFF_LOGOUT)


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def check_csrf(session_token: str, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(csrf_token(session_token), submitted):
        raise StaffCsrfRefused()


def new_login_nonce() -> str:
    return secrets.token_urlsafe(32)


def login_csrf(nonce: str) -> str:
    return hmac.new(nonce.encode(), _LOGIN_LABEL, hashlib.sha256).hexdigest()


def check_login_csrf(nonce: str | None, submitted: str | None) -> None:
    if not nonce or len(nonce) > MAX_TOKEN or not submitted:
        raise StaffCsrfRefused()
    if not hmac.compare_digest(login_csrf(nonce), submitted):
        raise StaffCsrfRefused()
