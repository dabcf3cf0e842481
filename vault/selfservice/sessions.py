"""How a customer gets into the self-service page and stays in: magic links, sessions, CSRF.

- An internal app, staff or the customer on /me asks for a link (:func:`issue_link`, mailed by
  :mod:`vault.selfservice.links`): 32 random bytes, URL-safe; only the SHA-256 is stored, with
  a 15-minute expiry and who asked (``origin``), which the session it opens keeps. Opening it
  (:func:`consume_link`) marks it used in the same transaction that starts a session, so a
  second use — or a concurrent one — fails.
- A session is another 32 random bytes in an HttpOnly cookie; the table keeps its SHA-256, the
  customer, ``last_seen_at`` (idle timeout) and an absolute ``expires_at``. Every request
  (:func:`open_session`) re-checks both and the customer's status, so an erased customer's
  sessions stop at once, however the erasure happened.
- The CSRF token of a session is ``HMAC-SHA256(session token, label)``: per session, never
  stored, and only computable by whoever holds the cookie value (the browser and the server).

The customer always comes from the session. Services never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, or_
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.config import Settings
from vault.customers import service as customers_service
from vault.db import utcnow
from vault.errors import CustomerErased, CustomerNotFound
from vault.provenance import Caller
from vault.selfservice.errors import (
    CsrfRefused,
    LinkExpired,
    LinkInvalid,
    LinkUsed,
    SessionRequired,
)
from vault.selfservice.models import SelfserviceLink, SelfserviceSession

LINK_PATH = "/me/login/"
LINK_KEPT_AFTER_EXPIRY = timedelta(days=1)
_CSRF_LABEL = b"consent-vault/selfservice/csrf/v1"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def customer_actor(customer_id: UUID) -> str:
    return f"customer:{customer_id}"


# The session origin of a link the customer asked for on /me themselves.
CUSTOMER_ORIGIN = "customer"


def origin_of(by: Caller) -> str:
    """Who started a session, from who had its link made: ``client:<id>`` (an app),
    ``staff:<id>``, ``cli`` (the operator: ``vault demo`` and other commands), or ``customer``
    (the customer's own request on /me, which :func:`issue_link` is told explicitly)."""
    kind, _, ident = by.actor.partition(":")
    if kind in ("client", "staff") and ident:
        return f"{kind}:{ident}"[:80]
    if kind == "customer":
        return CUSTOMER_ORIGIN
    return "cli"


@dataclass(frozen=True)
class IssuedLink:
    url: str
    expires_at: datetime


def issue_link(
    *,
    session: Session,
    settings: Settings,
    customer_id: UUID,
    by: Caller,
    origin: str | None = None,
    now: datetime | None = None,
) -> IssuedLink:
    """A single-use magic link to /me for the customer (404 unknown, 410 erased). ``origin``
    (default: :func:`origin_of` ``by``) goes on to the session the link opens."""
    now = now or utcnow()
    customers_service.get_customer(session, customer_id)
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=settings.selfservice_link_ttl_seconds)
    session.add(
        SelfserviceLink(
            token_hash=_hash(token),
            customer_id=customer_id,
            issued_by=by.actor[:80],
            origin=origin or origin_of(by),
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.SELFSERVICE_LINK_ISSUED,
        customer_id=customer_id,
        now=now,
    )
    return IssuedLink(f"{settings.public_url.rstrip('/')}{LINK_PATH}{token}", expires_at)


def record_link_throttled(session: Session, *, customer_id: UUID, by: Caller) -> None:
    """Audit the first refused link request of a rate-limit window (no link is made)."""
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.SELFSERVICE_LINK_THROTTLED,
        outcome="denied",
        reason="rate_limited",
        customer_id=customer_id,
    )


def purge_expired(*, session: Session, settings: Settings, now: datetime) -> None:
    """Delete sessions past their idle or absolute limit, and links a day after their expiry
    (until then opening one answers 410 "expired" rather than 401 "not valid")."""
    idle = now - timedelta(seconds=settings.selfservice_idle_seconds)
    session.execute(
        delete(SelfserviceSession).where(
            or_(SelfserviceSession.expires_at < now, SelfserviceSession.last_seen_at < idle)
        )
    )
    session.execute(
        delete(SelfserviceLink).where(SelfserviceLink.expires_at < now - LINK_KEPT_AFTER_EXPIRY)
    )


@dataclass(frozen=True)
class Started:
    token: str  # the cookie value; never stored
    row: SelfserviceSession


def consume_link(
    *,
    session: Session,
    settings: Settings,
    token: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> Started:
    """Use a magic link once and start a session. Unknown or forged: LinkInvalid (401); used:
    LinkUsed (410); expired: LinkExpired (410); customer erased: CustomerErased (410)."""
    now = now or utcnow()
    if not token or len(token) > 200:
        raise LinkInvalid()
    link = session.get(SelfserviceLink, _hash(token), with_for_update=True)
    if link is None:
        raise LinkInvalid()
    if link.used_at is not None:
        raise LinkUsed()
    if link.expires_at < now:
        raise LinkExpired()
    customer = customers_service.get_customer(session, link.customer_id)
    # Mark it used first: on SQLite the write lock is held already (BEGIN IMMEDIATE); on
    # PostgreSQL the row lock above makes a concurrent opener wait and then see used_at.
    link.used_at = now
    session.add(link)
    purge_expired(session=session, settings=settings, now=now)
    cookie = secrets.token_urlsafe(32)
    row = SelfserviceSession(
        id_hash=_hash(cookie),
        customer_id=customer.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.selfservice_session_max_seconds),
        origin=link.origin,
    )
    session.add(row)
    session.flush()
    audit_record.record(
        session=session,
        by=Caller(customer_actor(customer.id), request_id),
        action=AuditAction.SELFSERVICE_LOGIN,
        customer_id=customer.id,
        now=now,
    )
    return Started(cookie, row)


def signed_in_with_link(
    *,
    session: Session,
    settings: Settings,
    token: str,
    cookie: str | None,
    now: datetime | None = None,
) -> bool:
    """Whether a browser that opens a used or expired link is already signed in, with a live
    session, as that link's customer (the customer clicked the e-mail again): then it goes
    back to /me instead of an error page. A session of another customer is no such proof."""
    if not cookie or not token or len(token) > 200:
        return False
    link = session.get(SelfserviceLink, _hash(token))
    if link is None:
        return False
    try:
        row = open_session(session=session, settings=settings, token=cookie, now=now)
    except SessionRequired:
        return False
    return row.customer_id == link.customer_id


def open_session(
    *, session: Session, settings: Settings, token: str | None, now: datetime | None = None
) -> SelfserviceSession:
    """The live session behind a cookie value, its ``last_seen_at`` moved to now. Unknown,
    idle for too long, past its absolute end, or of an erased customer: SessionRequired."""
    now = now or utcnow()
    if not token or len(token) > 200:
        raise SessionRequired()
    row = session.get(SelfserviceSession, _hash(token))
    if row is None:
        raise SessionRequired()
    idle_limit = row.last_seen_at + timedelta(seconds=settings.selfservice_idle_seconds)
    if row.expires_at < now or idle_limit < now:
        raise SessionRequired("Your session has ended. Open a new link from your e-mail.")
    try:
        customers_service.get_customer(session, row.customer_id)
    except (CustomerNotFound, CustomerErased):
        raise SessionRequired("Your session has ended.") from None
    row.last_seen_at = now
    session.add(row)
    session.flush()
    return row


def end_session(*, session: Session, token: str, customer_id: UUID, by: Caller) -> None:
    """Logout: the session row goes, so the cookie value is worthless from now on."""
    session.execute(delete(SelfserviceSession).where(SelfserviceSession.id_hash == _hash(token)))
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.SELFSERVICE_LOGOUT,
        customer_id=customer_id,
    )


def shred(session: Session, customer_ids: list[UUID]) -> None:
    """Erasure, at every door: every session of these customers ends and its row goes. Their
    links stay until purged (a link row holds a token hash, the customer id and times, no
    personal data): opening one answers 410 (customer erased) rather than 401."""
    session.execute(
        delete(SelfserviceSession).where(SelfserviceSession.customer_id.in_(customer_ids))
    )


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def check_csrf(session_token: str, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(csrf_token(session_token), submitted):
        raise CsrfRefused()
