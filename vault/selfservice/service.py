"""The self-service page's logic: magic links, sessions, CSRF, and what the pages show and do.

How a customer gets in and stays in:

- An internal app asks for a link (:func:`issue_link`): 32 random bytes, URL-safe; only the
  SHA-256 is stored, with a 15-minute expiry. Opening it (:func:`consume_link`) marks it used in
  the same transaction that starts a session, so a second use — or a concurrent one — fails.
- A session is another 32 random bytes in an HttpOnly cookie; the table keeps its SHA-256, the
  customer, ``last_seen_at`` (idle timeout) and an absolute ``expires_at``. Every request
  (:func:`open_session`) re-checks both and the customer's status, so an erased customer's
  sessions stop at once, however the erasure happened.
- The CSRF token of a session is ``HMAC-SHA256(session token, label)``: per session, never
  stored, and only computable by whoever holds the cookie value (the browser and the server).

Every change is a consent event (channel ``selfservice``, actor ``customer``, recorded by
``customer:<id>``, evidence: user agent, truncated IP, language, GPC) or a DSR action; the
consent and DSR services audit each with the customer as actor. The customer always comes
from the session. Services never commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, or_, select
from sqlmodel import Session

from vault.audit import service as audit_service
from vault.audit.models import AuditEvent
from vault.auth.models import Client
from vault.auth.tokens import Signer
from vault.config import Settings
from vault.consent import errors as consent_errors
from vault.consent import evidence as consent_evidence
from vault.consent import reads as consent_reads
from vault.consent import rules as consent_rules
from vault.consent import service as consent_service
from vault.consent.models import Channel, ConsentEvent, ConsentState, EffectiveStatus
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.customers.models import Customer, CustomerStatus
from vault.db import utcnow
from vault.dsr import service as dsr_service
from vault.errors import CustomerErased, InvalidRequest, VaultError
from vault.policy import Policy, Purpose
from vault.policy.decision import DIRECT_MARKETING
from vault.policy.models import LegalBasis
from vault.selfservice.models import SelfserviceLink, SelfserviceSession

LINK_PATH = "/me/login/"
MAX_USER_AGENT = 256
LINK_KEPT_AFTER_EXPIRY = timedelta(days=1)
_CSRF_LABEL = b"consent-vault/selfservice/csrf/v1"
# Only these actions appear on "who used my data": releases of data to apps.
USE_ACTIONS = ("data.read", "data.export")
ACTIVITY_LIMIT = 200


# --- errors -------------------------------------------------------------------------------


class LinkInvalid(VaultError):
    code = "selfservice_link_invalid"
    status = 401
    default_detail = "This link is not valid."


class LinkUsed(VaultError):
    code = "selfservice_link_used"
    status = 410
    default_detail = "This link has already been used."


class LinkExpired(VaultError):
    code = "selfservice_link_expired"
    status = 410
    default_detail = "This link has expired."


class SessionRequired(VaultError):
    code = "selfservice_session_required"
    status = 401
    default_detail = "Open the link from your e-mail to see this page."


class CsrfRefused(VaultError):
    code = "csrf_refused"
    status = 403
    default_detail = "The form could not be verified; reload the page and try again."


class ErasureNotConfirmed(InvalidRequest):
    code = "erasure_not_confirmed"
    default_detail = "Tick the box to confirm that your data should be erased."


# --- tokens -------------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def customer_actor(customer_id: UUID) -> str:
    return f"customer:{customer_id}"


@dataclass(frozen=True)
class IssuedLink:
    url: str
    expires_at: datetime


def issue_link(
    *,
    session: Session,
    settings: Settings,
    customer_id: UUID,
    issued_by: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> IssuedLink:
    """A single-use magic link to /me for the customer (404 unknown, 410 erased)."""
    now = now or utcnow()
    customers_service.get_customer(session, customer_id)
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=settings.selfservice_link_ttl_seconds)
    session.add(
        SelfserviceLink(
            token_hash=_hash(token),
            customer_id=customer_id,
            issued_by=issued_by[:80],
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    audit_service.record(
        session=session,
        actor=issued_by,
        action="selfservice.link_issued",
        customer_id=customer_id,
        request_id=request_id,
        now=now,
    )
    return IssuedLink(f"{settings.public_url.rstrip('/')}{LINK_PATH}{token}", expires_at)


def record_link_throttled(
    *, session: Session, customer_id: UUID, issued_by: str, request_id: str | None = None
) -> None:
    """Audit the first refused link request of a rate-limit window (no link is made)."""
    audit_service.record(
        session=session,
        actor=issued_by,
        action="selfservice.link_throttled",
        outcome="denied",
        reason="rate_limited",
        customer_id=customer_id,
        request_id=request_id,
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
    )
    session.add(row)
    session.flush()
    audit_service.record(
        session=session,
        actor=customer_actor(customer.id),
        action="selfservice.login",
        customer_id=customer.id,
        request_id=request_id,
        now=now,
    )
    return Started(cookie, row)


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
    customer = session.get(Customer, row.customer_id)
    if customer is None or customer.status == CustomerStatus.ERASED:
        raise SessionRequired("Your session has ended.")
    row.last_seen_at = now
    session.add(row)
    session.flush()
    return row


def end_session(
    *, session: Session, token: str, customer_id: UUID, request_id: str | None = None
) -> None:
    """Logout: the session row goes, so the cookie value is worthless from now on."""
    session.execute(delete(SelfserviceSession).where(SelfserviceSession.id_hash == _hash(token)))
    audit_service.record(
        session=session,
        actor=customer_actor(customer_id),
        action="selfservice.logout",
        customer_id=customer_id,
        request_id=request_id,
    )


def end_customer_sessions(*, session: Session, customer_id: UUID) -> None:
    """End every session of a customer (erasure). Their links stay until purged: opening one
    answers 410 (used, or customer erased) rather than 401."""
    session.execute(delete(SelfserviceSession).where(SelfserviceSession.customer_id == customer_id))


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def check_csrf(session_token: str, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(csrf_token(session_token), submitted):
        raise CsrfRefused()


# --- evidence -----------------------------------------------------------------------------


def page_evidence(
    *, user_agent: str | None, client_ip: str | None, language: str, gpc: bool
) -> dict[str, Any]:
    """Evidence of a statement made on the page: user agent (truncated), the client's IP
    truncated by the consent service's rule (/24, /48), the page language, the GPC signal."""
    evidence: dict[str, Any] = {"language": language, "gpc": gpc}
    if user_agent:
        ua = " ".join(user_agent.split())[:MAX_USER_AGENT]
        try:
            consent_evidence.clean_evidence({"user_agent": ua})
            evidence["user_agent"] = ua
        except VaultError:
            evidence["user_agent"] = "(withheld)"
    if client_ip:
        # The consent service truncates ``ip`` on write; here only check that it is one (a
        # test client or a unix socket gives none, and then there is nothing to keep).
        with contextlib.suppress(VaultError):
            consent_evidence.truncate_ip(client_ip)
            evidence["ip"] = client_ip
    return evidence


# --- consents -----------------------------------------------------------------------------


def change_consent(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    customer_id: UUID,
    purpose: str,
    status: str,
    language: str,
    evidence: dict[str, Any],
    request_id: str | None = None,
    now: datetime | None = None,
) -> consent_service.RecordResult:
    """The customer switched a consent on (``granted``) or off (``withdrawn``) on the page."""
    if status not in ("granted", "withdrawn"):
        raise consent_errors.InvalidConsentStatus("Choose to give or to withdraw consent.")
    result = consent_service.record_event(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        customer_id=customer_id,
        purpose=purpose,
        status=status,
        channel=Channel.SELFSERVICE.value,
        method="selfservice_switch",
        actor="customer",
        recorded_by=customer_actor(customer_id),
        language=language,
        evidence=evidence,
        now=now,
    )
    return result  # record_event audits it (consent.recorded, actor customer:<id>)


def apply_gpc(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    started: SelfserviceSession,
    language: str,
    evidence: dict[str, Any],
    request_id: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """``Sec-GPC: 1`` on the first request of a session: record a refusal (method ``gpc``) for
    every purpose marked ``gpc_opt_out`` — unless it is already refused or withdrawn, or its
    current decision is a grant the customer made on this page (an explicit choice there
    outweighs the browser's general signal). Returns the purposes refused; the session keeps
    them to tell the customer."""
    now = now or utcnow()
    customer_id = started.customer_id
    refused: list[str] = []
    for purpose in policy.purposes.values():
        if not purpose.gpc_opt_out or not purpose.needs_consent:
            continue
        state = session.get(ConsentState, (customer_id, purpose.id))
        status = consent_rules.effective_status(state, purpose, now)
        if status in (EffectiveStatus.REFUSED, EffectiveStatus.WITHDRAWN):
            continue
        if state is not None:
            deciding = session.execute(
                select(ConsentEvent.channel).where(ConsentEvent.id == state.event_id)
            ).scalar_one_or_none()
            if deciding == Channel.SELFSERVICE.value:
                continue
        consent_service.record_event(
            session=session,
            policy=policy,
            signer=signer,
            settings=settings,
            customer_id=customer_id,
            purpose=purpose.id,
            status="refused",
            channel=Channel.SELFSERVICE.value,
            method="gpc",
            actor="customer",
            recorded_by=customer_actor(customer_id),
            language=language,
            evidence={**evidence, "gpc": True},
            now=now,
        )
        refused.append(purpose.id)
    if refused:
        started.gpc_refused = " ".join(refused)
        session.add(started)
        session.flush()
    return refused


# --- what the pages show --------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeUse:
    name: str
    label: str
    reduction: str | None  # "year", "prefix2", "domain"


@dataclass(frozen=True)
class PurposeView:
    id: str
    title: str
    description: str
    legal_basis: str
    explicit_consent: bool
    attributes: list[AttributeUse]
    recipients: list[tuple[str, str]]  # (name, kind)
    status: str | None  # effective consent status; None for purposes not based on consent
    changes: str | None  # shown when the customer must consent again
    direct_marketing: bool
    objectable: bool  # Art. 21(1): legitimate interest
    objected: bool

    @property
    def switched_on(self) -> bool:
        return self.status in (EffectiveStatus.GRANTED, EffectiveStatus.PENDING_CONFIRMATION)


def _purpose_view(
    policy: Policy,
    purpose: Purpose,
    lang: str,
    status: str | None,
    objections: frozenset[str],
) -> PurposeView:
    attrs = []
    for name in purpose.attributes:
        attr = policy.attributes.get(name)
        label = attr.label.get(lang) if attr is not None else name
        reduction = purpose.reduce.get(name)
        attrs.append(AttributeUse(name, label, reduction.value if reduction else None))
    recipients = [
        (policy.recipients[r].name.get(lang), policy.recipients[r].kind)
        for r in purpose.recipients
        if r in policy.recipients
    ]
    changes = purpose.changes.get(lang) if status == EffectiveStatus.RECONSENT_REQUIRED else None
    objectable = purpose.legal_basis is LegalBasis.LEGITIMATE_INTEREST
    return PurposeView(
        id=purpose.id,
        title=purpose.title.get(lang),
        description=purpose.description.get(lang),
        legal_basis=purpose.legal_basis.value,
        explicit_consent=purpose.explicit_consent,
        attributes=attrs,
        recipients=recipients,
        status=status,
        changes=changes or None,
        direct_marketing=purpose.direct_marketing,
        objectable=objectable,
        objected=objectable and purpose.id in objections,
    )


@dataclass(frozen=True)
class ConsentsView:
    consent: list[PurposeView]
    other: list[PurposeView]
    direct_marketing: list[PurposeView]
    objected_direct_marketing: bool
    status: str  # active | restricted


def consents_view(
    *, session: Session, policy: Policy, customer_id: UUID, lang: str, now: datetime | None = None
) -> ConsentsView:
    now = now or utcnow()
    customer = customers_service.get_customer(session, customer_id)
    objections = customer.objection_set
    states = consent_reads.effective_states(
        session=session, policy=policy, customer_id=customer_id, now=now
    )
    consent, other = [], []
    for purpose in policy.purposes.values():
        if purpose.needs_consent:
            consent.append(
                _purpose_view(policy, purpose, lang, states[purpose.id].status, objections)
            )
        else:
            other.append(_purpose_view(policy, purpose, lang, None, objections))
    return ConsentsView(
        consent=consent,
        other=other,
        direct_marketing=[p for p in consent + other if p.direct_marketing],
        objected_direct_marketing=DIRECT_MARKETING in objections,
        status=customer.status,
    )


def first_name(*, session: Session, envelope: Envelope, customer_id: UUID) -> str | None:
    customer = customers_service.get_customer(session, customer_id)
    values = customers_service.decrypt_values(
        session=session, envelope=envelope, customer=customer, names=["first_name"]
    )
    value = values.get("first_name")
    return str(value) if value is not None else None


@dataclass(frozen=True)
class DataItem:
    name: str
    label: str
    value: Any


def my_data(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer_id: UUID,
    lang: str,
    request_id: str | None = None,
) -> list[DataItem]:
    """The customer's decrypted values with their labels, in the policy's order. The view is
    audited (the customer as actor), so the log shows every decryption."""
    customer = customers_service.get_customer(session, customer_id)
    values = customers_service.decrypt_values(session=session, envelope=envelope, customer=customer)
    order = {name: i for i, name in enumerate(policy.attributes)}
    items = [
        DataItem(
            name,
            policy.attributes[name].label.get(lang) if name in policy.attributes else name,
            value,
        )
        for name, value in values.items()
    ]
    items.sort(key=lambda item: order.get(item.name, len(order)))
    audit_service.record(
        session=session,
        actor=customer_actor(customer_id),
        action="selfservice.data_viewed",
        customer_id=customer_id,
        attributes=sorted(values),
        request_id=request_id,
    )
    return items


@dataclass(frozen=True)
class Use:
    at: datetime
    app: str
    purpose: str
    attributes: list[str]


def activity(
    *, session: Session, policy: Policy, customer_id: UUID, lang: str, limit: int = ACTIVITY_LIMIT
) -> list[Use]:
    """ "Who used my data": the latest releases of the customer's data to apps, from the audit
    log, in plain words (app name, purpose title, attribute labels, time). Newest first."""
    rows = session.execute(
        select(
            AuditEvent.occurred_at,
            AuditEvent.actor_id,
            AuditEvent.purpose,
            AuditEvent.attributes,
        )
        .where(
            AuditEvent.customer_id == customer_id,
            AuditEvent.actor_type == "client",
            AuditEvent.action.in_(USE_ACTIONS),
            AuditEvent.outcome == "allowed",
        )
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    ).all()
    names = _client_names(session, {r.actor_id for r in rows if r.actor_id})
    out = []
    for r in rows:
        purpose = policy.purposes.get(r.purpose or "")
        out.append(
            Use(
                at=r.occurred_at,
                app=names.get(r.actor_id or "", r.actor_id or "?"),
                purpose=purpose.title.get(lang) if purpose else (r.purpose or ""),
                attributes=[
                    policy.attributes[a].label.get(lang) if a in policy.attributes else a
                    for a in (r.attributes.split(",") if r.attributes else [])
                ],
            )
        )
    return out


def _client_names(session: Session, ids: Iterable[str]) -> dict[str, str]:
    ids = list(ids)
    if not ids:
        return {}
    return dict(session.execute(select(Client.id, Client.name).where(Client.id.in_(ids))).all())


def ensure_active_customer(session: Session, customer_id: UUID) -> Customer:
    customer = customers_service.get_customer(session, customer_id, allow_erased=True)
    if customer.status == CustomerStatus.ERASED:
        raise CustomerErased()
    return customer


# --- data-subject rights: the DSR services, with the customer as actor --------------------------


def objection(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    scope: str,
    withdraw: bool,
    request_id: str | None = None,
) -> None:
    """Object (Art. 21) to direct marketing or a legitimate-interest purpose, or withdraw the
    objection, through :mod:`vault.dsr.service` (which audits it and emits the event)."""
    fn = dsr_service.withdraw_objection if withdraw else dsr_service.object_to
    fn(
        session=session,
        policy=policy,
        customer_id=customer_id,
        scope=scope,
        actor=customer_actor(customer_id),
        request_id=request_id,
    )


def export(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer_id: UUID,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The full Art. 15/20 export document (audited and recorded by the DSR service)."""
    return dsr_service.export(
        session=session,
        envelope=envelope,
        policy=policy,
        customer_id=customer_id,
        actor=customer_actor(customer_id),
        kind="portability",
        request_id=request_id,
    )


def erase(
    *,
    session: Session,
    customer_id: UUID,
    confirmed: bool,
    request_id: str | None = None,
) -> None:
    """Erase the customer (crypto-shredding by the DSR service) after the explicit
    confirmation, and end every session and link of theirs in the same transaction."""
    if not confirmed:
        raise ErasureNotConfirmed()
    dsr_service.erase(
        session=session,
        customer_id=customer_id,
        actor=customer_actor(customer_id),
        request_id=request_id,
    )
    end_customer_sessions(session=session, customer_id=customer_id)
