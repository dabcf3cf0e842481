"""The consent ledger: record statements, project the last decision, judge it, replay it.

How a decision is made and read:

- Every statement is a ``consent_event`` row (append-only; triggers refuse UPDATE and DELETE).
- ``consent_state`` holds the *deciding* event per (customer, purpose): the one with the latest
  ``occurred_at`` (ties: the one recorded last). :func:`apply` is that rule for one event and
  :func:`replay` folds it over the ledger, so the projection written live and the one rebuilt
  from the ledger are equal by construction. A late event (older ``occurred_at`` than the
  current decision, e.g. from an offline store terminal) is kept but decides nothing.
- The projection stores the *raw* last decision. :func:`effective_status` judges it against the
  purpose's current rules at read time — double opt-in, TTL expiry, reconsent after a version
  bump — so nothing depends on a background job having run.
- Writes lock the customer row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
  IMMEDIATE`` already serialises writers), so concurrent writers for one customer queue and the
  projection always equals the replay of the ledger.

Services never commit; the request's transaction does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol
from uuid import UUID, uuid4

import orjson
from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.config import Settings
from vault.consent.models import (
    Channel,
    ConsentConfirmation,
    ConsentEvent,
    ConsentIdempotency,
    ConsentState,
    ConsentStatus,
    ConsentWrite,
    EffectiveStatus,
)
from vault.consent.receipts import notice_hash, sign_receipt
from vault.crypto.envelope import Envelope
from vault.crypto.signing import Signer
from vault.customers import service as customers_service
from vault.customers.models import Customer, CustomerStatus
from vault.db import utcnow
from vault.errors import (
    Conflict,
    CustomerErased,
    CustomerNotFound,
    InvalidRequest,
    NotFound,
    VaultError,
)
from vault.events import outbox as events_outbox
from vault.policy import Policy, Purpose

CLOCK_SKEW = timedelta(minutes=2)
CONFIRMATION_TTL = timedelta(days=7)
HISTORY_MAX = 10_000  # most events one history request returns
WRITABLE_STATUSES = frozenset(
    {ConsentStatus.GRANTED, ConsentStatus.WITHDRAWN, ConsentStatus.REFUSED}
)
_COUNTING = frozenset({ConsentStatus.GRANTED, ConsentStatus.CONFIRMED})


# --- errors -------------------------------------------------------------------------------


class UnknownPurpose(VaultError):
    code = "unknown_purpose"
    status = 422
    default_detail = "No purpose with this id in the policy."


class ConsentNotApplicable(VaultError):
    code = "purpose_not_consent_based"
    status = 422
    default_detail = "This purpose does not rest on consent; its legal basis is another."


class InvalidConsentStatus(VaultError):
    code = "invalid_consent_status"
    status = 422
    default_detail = "status must be one of granted, withdrawn, refused."


class OccurredInFuture(VaultError):
    code = "occurred_at_in_future"
    status = 422
    default_detail = "occurred_at lies more than 2 minutes in the future."


class InvalidEvidence(VaultError):
    code = "invalid_evidence"
    status = 422
    default_detail = "evidence must be a flat object of short scalar values."


class EvidenceContainsContactData(VaultError):
    code = "evidence_contains_contact_data"
    status = 422
    default_detail = "evidence must not contain contact data (e-mail, phone, name, address)."


class AsOfInFuture(VaultError):
    code = "as_of_in_future"
    status = 422
    default_detail = "as_of must not lie in the future."


class ConfirmationTokenNotFound(NotFound):
    code = "confirmation_token_not_found"
    default_detail = "This confirmation token is not known."


class ConfirmationTokenUsed(Conflict):
    code = "confirmation_token_used"
    default_detail = "This confirmation token has already been used."


class ConfirmationTokenExpired(VaultError):
    code = "confirmation_token_expired"
    status = 410
    default_detail = "This confirmation token has expired; ask for the consent again."


class ConfirmationSuperseded(Conflict):
    code = "confirmation_superseded"
    default_detail = "A later decision replaced the grant this token would confirm."


class IdempotencyKeyReused(VaultError):
    code = "idempotency_key_reused"
    status = 422
    default_detail = "This Idempotency-Key was used for a different request."


class IdempotencyConflict(Conflict):
    code = "idempotency_key_in_use"
    default_detail = "A request with this Idempotency-Key is being processed; retry."


# --- the decision rule (pure) ---------------------------------------------------------------


class StateLike(Protocol):
    status: str
    version: int
    granted_at: datetime | None
    decided_at: datetime


class EventLike(Protocol):
    id: UUID
    status: str
    purpose_version: int
    occurred_at: datetime


@dataclass(frozen=True)
class Decision:
    """The values of one ``consent_state`` row, as the ledger determines them."""

    status: str
    version: int
    granted_at: datetime | None
    decided_at: datetime
    event_id: UUID


def apply(current: Decision | None, event: EventLike) -> tuple[Decision | None, bool]:
    """The projection after ``event``, and whether the event decided anything.

    An event older than the current decision (``occurred_at`` earlier) is late: it stays in the
    ledger but the decision stands. Ties go to the event recorded later."""
    if current is not None and event.occurred_at < current.decided_at:
        return current, False
    granted_at = event.occurred_at if event.status in _COUNTING else None
    return (
        Decision(
            status=event.status,
            version=event.purpose_version,
            granted_at=granted_at,
            decided_at=event.occurred_at,
            event_id=event.id,
        ),
        True,
    )


def replay(events: Iterable[EventLike]) -> Decision | None:
    """Fold the events of one (customer, purpose), in ``(occurred_at, seq)`` order."""
    decision: Decision | None = None
    for event in events:
        decision, _ = apply(decision, event)
    return decision


def expires_at(state: StateLike | None, purpose: Purpose) -> datetime | None:
    if state is None or state.status not in _COUNTING or not purpose.consent_ttl_days:
        return None
    start = state.granted_at or state.decided_at
    return start + timedelta(days=purpose.consent_ttl_days)


def effective_status(state: StateLike | None, purpose: Purpose, now: datetime) -> str:
    """What the last decision means now under the purpose's current rules.

    ``granted`` only for a grant (confirmed if the purpose needs double opt-in) of a version
    that still counts and not past ``consent_ttl_days``; otherwise the reason it does not
    count: ``pending_confirmation``, ``withdrawn``, ``refused``, ``expired``,
    ``reconsent_required`` (the purpose was raised to a new version with ``reconsent``) or
    ``none`` (never decided)."""
    if state is None:
        return EffectiveStatus.NONE
    status = state.status
    if status in (ConsentStatus.WITHDRAWN, ConsentStatus.REFUSED, ConsentStatus.EXPIRED):
        return status
    if purpose.reconsent and state.version < purpose.version:
        return EffectiveStatus.RECONSENT_REQUIRED
    if status == ConsentStatus.PENDING_CONFIRMATION:
        return EffectiveStatus.PENDING_CONFIRMATION
    if status == ConsentStatus.GRANTED and purpose.double_opt_in:
        # granted before the purpose required double opt-in: it needs a confirmation now
        return EffectiveStatus.PENDING_CONFIRMATION
    if status in _COUNTING:
        end = expires_at(state, purpose)
        if end is not None and end < now:
            return EffectiveStatus.EXPIRED
        return EffectiveStatus.GRANTED
    return EffectiveStatus.NONE  # a status this code does not know never counts


@dataclass(frozen=True)
class EffectiveConsent:
    purpose: str
    status: str
    version: int | None
    updated_at: datetime | None
    expires_at: datetime | None


def effective(state: StateLike | None, purpose: Purpose, now: datetime) -> EffectiveConsent:
    return EffectiveConsent(
        purpose=purpose.id,
        status=effective_status(state, purpose, now),
        version=state.version if state is not None else purpose.version,
        updated_at=state.decided_at if state is not None else None,
        expires_at=expires_at(state, purpose),
    )


def consent_purposes(policy: Policy, purposes: Iterable[str] | None = None) -> list[Purpose]:
    ids = policy.purposes if purposes is None else purposes
    out = []
    for pid in ids:
        purpose = policy.purposes.get(pid)
        if purpose is not None and purpose.needs_consent:
            out.append(purpose)
    return out


def effective_states(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    now: datetime,
    purposes: Iterable[str] | None = None,
) -> dict[str, EffectiveConsent]:
    """The effective consent of one customer for every consent-based purpose (or ``purposes``),
    read from the projection. Purposes never decided are ``none``."""
    wanted = consent_purposes(policy, purposes)
    stmt = select(ConsentState).where(ConsentState.customer_id == customer_id)
    if purposes is not None:
        stmt = stmt.where(ConsentState.purpose.in_([p.id for p in wanted]))
    rows = {s.purpose: s for s in session.execute(stmt).scalars()}
    return {p.id: effective(rows.get(p.id), p, now) for p in wanted}


def states_as_of(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    as_of: datetime,
    now: datetime,
    purposes: Iterable[str] | None = None,
) -> dict[str, EffectiveConsent]:
    """The effective consent at a past instant (GDPR Art. 7(1)), replayed from the ledger.

    Events count by when they occurred, not when the vault learnt of them; expiry is judged at
    ``as_of``. The purpose rules applied are those of the current policy."""
    if as_of > now + CLOCK_SKEW:
        raise AsOfInFuture()
    wanted = consent_purposes(policy, purposes)
    events = session.execute(
        select(ConsentEvent)
        .where(
            ConsentEvent.customer_id == customer_id,
            ConsentEvent.occurred_at <= as_of,
            ConsentEvent.purpose.in_([p.id for p in wanted]),
        )
        .order_by(ConsentEvent.occurred_at, ConsentEvent.seq)
    ).scalars()
    decisions: dict[str, Decision | None] = {}
    for event in events:
        decisions[event.purpose], _ = apply(decisions.get(event.purpose), event)
    return {p.id: effective(decisions.get(p.id), p, as_of) for p in wanted}


def read_consents(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    now: datetime,
    as_of: datetime | None = None,
) -> dict[str, EffectiveConsent]:
    """``GET /v1/customers/{id}/consents``: from the projection, or replayed ``as_of``.

    After an erasure the ledger stays as proof: ``as_of`` an instant before ``erased_at``
    still answers (Art. 7(1)); the current state and later instants answer 410."""
    customer = customers_service.get_customer(session, customer_id, allow_erased=True)
    if customer.status == CustomerStatus.ERASED and (
        as_of is None or customer.erased_at is None or as_of >= customer.erased_at
    ):
        raise CustomerErased()
    if as_of is None:
        return effective_states(session=session, policy=policy, customer_id=customer_id, now=now)
    return states_as_of(
        session=session, policy=policy, customer_id=customer_id, as_of=as_of, now=now
    )


# --- evidence -----------------------------------------------------------------------------

_IP_KEYS = frozenset({"ip", "ip_address", "client_ip", "remote_addr", "remote_ip"})
_CONTACT_KEY = re.compile(
    r"e_?mail|mail|phone|mobile|fax|street|address|postal|zip|birth|surname|(^|_)name($|_)",
    re.IGNORECASE,
)
_EMAIL_VALUE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_VALUE = re.compile(r"^\s*(\+|00|0)[\d\s()/.-]{6,}$")
_EVIDENCE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
MAX_EVIDENCE_KEYS = 20
MAX_EVIDENCE_VALUE = 512


def truncate_ip(value: str) -> str:
    """IPv4 to its /24, IPv6 to its /48: enough to see a network, not a household."""
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidEvidence("evidence: the IP address is not valid.") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return f"{ipaddress.IPv4Address(int(ip) & ~0xFF)}/24"
    return f"{ipaddress.IPv6Address(int(ip) & ~((1 << 80) - 1))}/48"


_INT64 = 2**63


def clean_evidence(evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    """Flat, short, and free of plaintext contact data; IP addresses truncated."""
    if not evidence:
        return {}
    if not isinstance(evidence, Mapping) or len(evidence) > MAX_EVIDENCE_KEYS:
        raise InvalidEvidence(f"evidence may have at most {MAX_EVIDENCE_KEYS} keys.")
    out: dict[str, Any] = {}
    for key, value in evidence.items():
        if not isinstance(key, str) or not _EVIDENCE_KEY.match(key):
            raise InvalidEvidence("evidence keys are short identifiers ([A-Za-z0-9_.-]).")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidEvidence(f"evidence '{key}': only strings, numbers and booleans.")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvidence(f"evidence '{key}': numbers must be finite.")
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            # beyond what orjson (receipts, request hashes) and the JSON columns carry
            raise InvalidEvidence(f"evidence '{key}': integers must fit in 64 bits.")
        if key.lower() in _IP_KEYS:
            if not isinstance(value, str):
                raise InvalidEvidence(f"evidence '{key}': an IP address is a string.")
            out[key] = truncate_ip(value)
            continue
        if _CONTACT_KEY.search(key):
            raise EvidenceContainsContactData(f"evidence '{key}' looks like contact data.")
        if isinstance(value, str):
            if len(value) > MAX_EVIDENCE_VALUE:
                raise InvalidEvidence(f"evidence '{key}' is longer than {MAX_EVIDENCE_VALUE}.")
            if _EMAIL_VALUE.search(value) or _PHONE_VALUE.match(value):
                raise EvidenceContainsContactData(f"evidence '{key}' looks like contact data.")
        out[key] = value
    return out


# --- writing ------------------------------------------------------------------------------


class RecordResult(NamedTuple):
    event: LedgerEvent
    state: StateRecord
    receipt: str
    confirmation_token: str | None
    applied: bool


def consent_purpose(policy: Policy, purpose_id: str) -> Purpose:
    """The purpose, if it exists and rests on consent (else 422 with a clear code)."""
    purpose = policy.purposes.get(purpose_id)
    if purpose is None:
        raise UnknownPurpose()  # the id is client input: not echoed
    if not purpose.needs_consent:
        raise ConsentNotApplicable(
            f"Purpose '{purpose.id}' rests on {purpose.legal_basis.value}, not on consent; "
            "consent cannot be recorded for it."
        )
    return purpose


def lock_customer(session: Session, customer_id: UUID) -> None:
    """Check the customer for writing (404 unknown, 410 erased) and, on PostgreSQL, hold its
    row lock until commit, so consent writes of one customer queue."""
    status = session.connection().execute(_LOCK_CUSTOMER, {"cid": customer_id}).scalar()
    if status is None:
        raise CustomerNotFound()
    if status == CustomerStatus.ERASED:
        raise CustomerErased()


def lock_customer_state(session: Session, customer_id: UUID, purpose: str) -> StateRecord | None:
    """:func:`lock_customer`, then the current state of one purpose.

    Two statements on purpose: on PostgreSQL a ``SELECT ... JOIN ... FOR UPDATE OF customer``
    that waited for the lock re-reads only the locked row and would return the joined state
    as of before the wait (stale); a new statement after the lock sees the committed state."""
    lock_customer(session, customer_id)
    return _read_state(session, customer_id, purpose)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LedgerEvent:
    """A recorded ``consent_event`` row (what the write path returns; no ORM instance)."""

    seq: int
    id: UUID
    customer_id: UUID
    purpose: str
    purpose_version: int
    status: str
    occurred_at: datetime
    recorded_at: datetime
    channel: str
    method: str
    actor: str
    recorded_by: str
    language: str
    notice_hash: str
    evidence: dict[str, Any]
    receipt: str


@dataclass(frozen=True)
class StateRecord:
    """A ``consent_state`` row as the write left it (same attribute names as ConsentState)."""

    customer_id: UUID
    purpose: str
    status: str
    version: int
    granted_at: datetime | None
    decided_at: datetime
    event_id: UUID
    updated_at: datetime


# The hot path runs these prebuilt Core statements on the session's connection: no ORM
# objects, no statement construction per request (SQLAlchemy caches their compilation).
_CUSTOMER = Customer.__table__
_EVENT = ConsentEvent.__table__
_STATE = ConsentState.__table__
_LOCK_CUSTOMER = (
    select(_CUSTOMER.c.status).where(_CUSTOMER.c.id == bindparam("cid")).with_for_update()
)
_READ_STATE = select(_STATE).where(
    _STATE.c.customer_id == bindparam("cid"), _STATE.c.purpose == bindparam("pid")
)
_INSERT_EVENT = insert(_EVENT).returning(_EVENT.c.seq)
_INSERT_STATE = insert(_STATE)
_UPDATE_STATE = update(_STATE).where(
    _STATE.c.customer_id == bindparam("key_customer_id"),
    _STATE.c.purpose == bindparam("key_purpose"),
)
_INSERT_CONFIRMATION = insert(ConsentConfirmation.__table__)
_IDEMPOTENCY = ConsentIdempotency.__table__
_READ_IDEMPOTENCY = select(
    _IDEMPOTENCY.c.request_hash, _IDEMPOTENCY.c.response, _IDEMPOTENCY.c.token_ciphertext
).where(_IDEMPOTENCY.c.client == bindparam("client"), _IDEMPOTENCY.c.key == bindparam("key"))
_INSERT_IDEMPOTENCY = insert(_IDEMPOTENCY)


def _read_state(session: Session, customer_id: UUID, purpose: str) -> StateRecord | None:
    row = session.connection().execute(_READ_STATE, {"cid": customer_id, "pid": purpose}).first()
    return None if row is None else StateRecord(**row._mapping)


def _write_state(
    session: Session,
    existing: StateRecord | Decision | None,
    decision: Decision,
    now: datetime,
    customer_id: UUID,
    purpose: str,
) -> StateRecord:
    values = _values(decision)
    conn = session.connection()
    if existing is None:
        conn.execute(
            _INSERT_STATE,
            {"customer_id": customer_id, "purpose": purpose, "updated_at": now, **values},
        )
    else:
        conn.execute(
            _UPDATE_STATE,
            {"key_customer_id": customer_id, "key_purpose": purpose, "updated_at": now, **values},
        )
    return StateRecord(customer_id=customer_id, purpose=purpose, updated_at=now, **values)


def _values(decision: Decision) -> dict[str, Any]:
    return {
        "status": decision.status,
        "version": decision.version,
        "granted_at": decision.granted_at,
        "decided_at": decision.decided_at,
        "event_id": decision.event_id,
    }


def _decision(row: StateLike | None) -> Decision | None:
    if row is None:
        return None
    return Decision(
        status=row.status,
        version=row.version,
        granted_at=row.granted_at,
        decided_at=row.decided_at,
        event_id=row.event_id,  # type: ignore[attr-defined]
    )


def _append(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    purpose: Purpose,
    customer_id: UUID,
    status: str,
    version: int,
    channel: str,
    method: str,
    actor: str,
    recorded_by: str,
    language: str,
    occurred_at: datetime,
    evidence: dict[str, Any],
    now: datetime,
    current: StateRecord | None,
) -> tuple[LedgerEvent, StateRecord, bool]:
    """Insert one event (Core, no ORM objects: this is the hot path) and apply it."""
    values = {
        "id": uuid4(),
        "customer_id": customer_id,
        "purpose": purpose.id,
        "purpose_version": version,
        "status": status,
        "occurred_at": occurred_at,
        "recorded_at": now,
        "channel": channel,
        "method": method,
        "actor": actor,
        "recorded_by": recorded_by,
        "language": language,
        "notice_hash": notice_hash(purpose, language),
        "evidence": evidence,
    }
    values["receipt"] = sign_receipt(
        signer=signer, event=values, policy=policy, purpose=purpose, issuer=settings.issuer
    )
    seq = session.connection().execute(_INSERT_EVENT, values).scalar_one()
    event = LedgerEvent(seq=seq, **values)
    decision, applied = apply(_decision(current), event)
    # Every consent change is also an audit event (who recorded what, never evidence values).
    audit_record.record(
        session=session,
        actor=recorded_by,
        action="consent.recorded",
        customer_id=customer_id,
        purpose=purpose.id,
        reason=None if applied else "late_event",
        details={"status": status, "channel": channel, "version": version},
        now=now,
    )
    if applied:
        assert decision is not None
        state = _write_state(session, current, decision, now, customer_id, purpose.id)
        _emit(session, event, now)
    else:
        assert current is not None
        state = current
    return event, state, applied


# vault.events: what downstream tools are told when a statement decides (ids, purpose, status,
# time; no PII). A refusal is a withdrawal to a recipient; pending_confirmation tells nothing
# yet; consent.expired is emitted by the worker when it first observes the expiry.
_OUTBOX_TYPES = {
    ConsentStatus.GRANTED: "consent.granted",
    ConsentStatus.CONFIRMED: "consent.granted",
    ConsentStatus.WITHDRAWN: "consent.withdrawn",
    ConsentStatus.REFUSED: "consent.withdrawn",
}


def _emit(session: Session, event: LedgerEvent, now: datetime) -> None:
    kind = _OUTBOX_TYPES.get(event.status)
    if kind is None:
        return
    events_outbox.emit(
        session=session,
        type=kind,
        customer_id=event.customer_id,
        data={
            "purpose": event.purpose,
            "purpose_version": event.purpose_version,
            "status": event.status,
            "consent_event_id": event.id,
            "occurred_at": event.occurred_at,
        },
        now=now,
    )


def record_event(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    customer_id: UUID,
    purpose: str,
    status: str,
    channel: str,
    recorded_by: str,
    method: str = "unspecified",
    actor: str = "customer",
    language: str = "de",
    occurred_at: datetime | None = None,
    evidence: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> RecordResult:
    """Record one consent statement of a customer and update the projection with it.

    ``status`` is what the customer said: ``granted``, ``withdrawn`` or ``refused``. For a
    double opt-in purpose a grant is recorded as ``pending_confirmation`` and a single-use
    confirmation token (valid 7 days, stored only as its hash) is returned; only
    :func:`confirm` makes it count. A withdrawal of a consent never given is recorded too.
    ``occurred_at`` (default ``now``) may lie at most 2 minutes ahead; an older one than the
    current decision is kept in the ledger without deciding (``applied`` is false).
    ``channel`` names the door (``selfservice`` for the self-service page), ``actor`` who spoke
    (``customer`` or ``staff:<id>``), ``recorded_by`` who wrote it (``client:<id>``).
    ``evidence`` must hold no contact data; IP addresses are truncated.

    Raises UnknownPurpose, ConsentNotApplicable, InvalidConsentStatus, OccurredInFuture,
    InvalidEvidence, EvidenceContainsContactData, CustomerNotFound, CustomerErased."""
    now = now or utcnow()
    the_purpose = consent_purpose(policy, purpose)
    if status not in WRITABLE_STATUSES:
        raise InvalidConsentStatus()
    if channel not in Channel.__members__.values():
        raise InvalidRequest(f"Unknown channel '{channel[:32]}'.", code="invalid_channel")
    occurred_at = occurred_at or now
    if occurred_at > now + CLOCK_SKEW:
        raise OccurredInFuture()
    clean = clean_evidence(evidence)
    current = lock_customer_state(session, customer_id, the_purpose.id)
    if status == ConsentStatus.GRANTED and the_purpose.double_opt_in:
        status = ConsentStatus.PENDING_CONFIRMATION
    event, row, applied = _append(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        purpose=the_purpose,
        customer_id=customer_id,
        status=status,
        version=the_purpose.version,
        channel=channel,
        method=method,
        actor=actor,
        recorded_by=recorded_by,
        language=language,
        occurred_at=occurred_at,
        evidence=clean,
        now=now,
        current=current,
    )
    token = None
    if applied and status == ConsentStatus.PENDING_CONFIRMATION:
        token = secrets.token_urlsafe(32)
        session.connection().execute(
            _INSERT_CONFIRMATION,
            {
                "token_hash": _token_hash(token),
                "customer_id": customer_id,
                "purpose": the_purpose.id,
                "event_id": event.id,
                "created_at": now,
                "expires_at": now + CONFIRMATION_TTL,
            },
        )
    return RecordResult(event, row, event.receipt, token, applied)


def confirm(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    token: str,
    recorded_by: str,
    now: datetime | None = None,
) -> RecordResult:
    """Confirm a double opt-in grant with its token: records a ``confirmed`` event.

    The token is single use (second use: ConfirmationTokenUsed, 409), valid 7 days
    (ConfirmationTokenExpired, 410), and only confirms the grant it was issued for while that
    grant is still the current decision (ConfirmationSuperseded, 409)."""
    now = now or utcnow()
    conf = session.get(ConsentConfirmation, _token_hash(token))
    if conf is None:
        raise ConfirmationTokenNotFound()
    lock_customer(session, conf.customer_id)
    session.refresh(conf, with_for_update=True)  # see a concurrent confirmation's commit
    if conf.used_at is not None:
        raise ConfirmationTokenUsed()
    if conf.expires_at < now:
        raise ConfirmationTokenExpired()
    purpose = policy.purposes.get(conf.purpose)
    if purpose is None or not purpose.needs_consent:
        raise ConfirmationSuperseded("The purpose of this token no longer takes consent.")
    row = _read_state(session, conf.customer_id, conf.purpose)
    if row is None or row.event_id != conf.event_id:
        raise ConfirmationSuperseded()
    pending = session.execute(
        select(ConsentEvent).where(ConsentEvent.id == conf.event_id)
    ).scalar_one()
    conf.used_at = now
    session.add(conf)
    session.flush()
    event, row, applied = _append(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        purpose=purpose,
        customer_id=conf.customer_id,
        status=ConsentStatus.CONFIRMED,
        version=pending.purpose_version,
        channel=Channel.EMAIL,
        method="double_opt_in_confirmation",
        actor="customer",
        recorded_by=recorded_by,
        language=pending.language,
        # never before the grant it confirms, even if that one was dated slightly ahead
        occurred_at=max(now, row.decided_at),
        evidence={},
        now=now,
        current=row,
    )
    return RecordResult(event, row, event.receipt, None, applied)


# --- the HTTP write with Idempotency-Key --------------------------------------------------


def _request_hash(customer_id: UUID, write: ConsentWrite) -> str:
    doc = {"customer_id": str(customer_id), **write.model_dump(mode="json")}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


_TOKEN_AAD_NAME = "consent_idempotency_token"


def submit(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    envelope: Envelope,
    customer_id: UUID,
    write: ConsentWrite,
    recorded_by: str,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /v1/customers/{id}/consents``: record and answer; with an ``Idempotency-Key`` the
    first answer is kept (its confirmation token encrypted under the customer's data key) and
    a retry by the same client gets it again without a second event."""
    now = now or utcnow()
    request_hash = None
    if idempotency_key is not None:
        clean_evidence(write.evidence)  # refuse what cannot be hashed before hashing it
        lock_customer(session, customer_id)
        request_hash = _request_hash(customer_id, write)
        seen = (
            session.connection()
            .execute(_READ_IDEMPOTENCY, {"client": recorded_by, "key": idempotency_key})
            .first()
        )
        if seen is not None:
            if seen.request_hash != request_hash:
                raise IdempotencyKeyReused()
            response = dict(seen.response)
            if seen.token_ciphertext is not None:
                customer = customers_service.get_customer(session, customer_id)
                key = customers_service.data_key(envelope, customer)
                token = key.decrypt(_TOKEN_AAD_NAME, seen.token_ciphertext).decode()
                response["confirmation_token"] = token
            return response
    result = record_event(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        customer_id=customer_id,
        purpose=write.purpose,
        status=write.status,
        channel=write.channel,
        method=write.method,
        actor=write.actor,
        recorded_by=recorded_by,
        language=write.language,
        occurred_at=write.occurred_at,
        evidence=write.evidence,
        now=now,
    )
    response = write_result(result, policy.purposes[write.purpose], now)
    if idempotency_key is not None and request_hash is not None:
        ciphertext = None
        if result.confirmation_token is not None:
            customer = customers_service.get_customer(session, customer_id)
            key = customers_service.data_key(envelope, customer)
            ciphertext = key.encrypt(_TOKEN_AAD_NAME, result.confirmation_token.encode())
        stored = {k: v for k, v in response.items() if k != "confirmation_token"}
        try:
            session.connection().execute(
                _INSERT_IDEMPOTENCY,
                {
                    "client": recorded_by,
                    "key": idempotency_key,
                    "request_hash": request_hash,
                    "customer_id": customer_id,
                    "response": stored,
                    "token_ciphertext": ciphertext,
                    "created_at": now,
                },
            )
        except IntegrityError:
            # the same key used at the same moment for another customer: the whole request
            # (event included) rolls back
            raise IdempotencyConflict() from None
    return response


def event_public(event: LedgerEvent | ConsentEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "seq": event.seq,
        "customer_id": str(event.customer_id),
        "purpose": event.purpose,
        "purpose_version": event.purpose_version,
        "status": event.status,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "channel": event.channel,
        "method": event.method,
        "actor": event.actor,
        "recorded_by": event.recorded_by,
        "language": event.language,
        "notice_hash": event.notice_hash,
        "evidence": event.evidence,
    }


def state_public(consent: EffectiveConsent) -> dict[str, Any]:
    return {
        "purpose": consent.purpose,
        "status": consent.status,
        "version": consent.version,
        "updated_at": consent.updated_at.isoformat() if consent.updated_at else None,
        "expires_at": consent.expires_at.isoformat() if consent.expires_at else None,
    }


def write_result(result: RecordResult, purpose: Purpose, now: datetime) -> dict[str, Any]:
    """The JSON answer to a write (plain data, so it can be kept for idempotent replay)."""
    return {
        "event": event_public(result.event),
        "state": state_public(effective(result.state, purpose, now)),
        "receipt": result.receipt,
        "applied": result.applied,
        "confirmation_token": result.confirmation_token,
    }


# --- reading ------------------------------------------------------------------------------


def history(
    *,
    session: Session,
    customer_id: UUID,
    purpose: str | None = None,
    limit: int = 1000,
) -> list[ConsentEvent]:
    """The customer's ledger in decision order. Kept after erasure: it holds no clear PII."""
    customers_service.get_customer(session, customer_id, allow_erased=True)
    stmt = select(ConsentEvent).where(ConsentEvent.customer_id == customer_id)
    if purpose is not None:
        stmt = stmt.where(ConsentEvent.purpose == purpose)
    stmt = stmt.order_by(ConsentEvent.occurred_at, ConsentEvent.seq).limit(limit)
    return list(session.execute(stmt).scalars())


# --- rebuild ------------------------------------------------------------------------------


@dataclass
class Difference:
    customer_id: UUID
    purpose: str
    projection: Decision | None
    ledger: Decision | None

    def describe(self) -> str:
        def show(d: Decision | None) -> str:
            if d is None:
                return "(no row)"
            granted = d.granted_at.isoformat() if d.granted_at else "-"
            return (
                f"{d.status} v{d.version} granted_at={granted} "
                f"decided_at={d.decided_at.isoformat()} event={d.event_id}"
            )

        return (
            f"{self.customer_id} {self.purpose}: projection {show(self.projection)}; "
            f"ledger {show(self.ledger)}"
        )


@dataclass
class RebuildReport:
    events: int = 0
    states: int = 0
    differences: list[Difference] = field(default_factory=list)
    fixed: bool = False


def rebuild(*, session: Session, fix: bool, now: datetime | None = None) -> RebuildReport:
    """Replay the whole ledger and compare it with ``consent_state``; with ``fix`` rewrite the
    rows that differ (insert missing, update wrong, delete rows without events).

    On PostgreSQL the projection is locked against writers for the duration (they queue), so
    the comparison sees one consistent moment; on SQLite the write transaction does that."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE consent_state IN EXCLUSIVE MODE"))
    report = RebuildReport()
    projection = {
        (row.customer_id, row.purpose): _decision(row)
        for row in session.execute(select(ConsentState)).scalars()
    }
    report.states = len(projection)
    ledger: dict[tuple[UUID, str], Decision | None] = {}
    rows = session.execute(
        select(
            ConsentEvent.customer_id,
            ConsentEvent.purpose,
            ConsentEvent.id,
            ConsentEvent.status,
            ConsentEvent.purpose_version,
            ConsentEvent.occurred_at,
        )
        .order_by(ConsentEvent.customer_id, ConsentEvent.purpose)
        .order_by(ConsentEvent.occurred_at, ConsentEvent.seq)
        .execution_options(yield_per=5000)
    )
    for row in rows:
        report.events += 1
        key = (row.customer_id, row.purpose)
        ledger[key], _ = apply(ledger.get(key), row)
    for key in sorted(set(projection) | set(ledger), key=lambda k: (str(k[0]), k[1])):
        have, want = projection.get(key), ledger.get(key)
        if have != want:
            report.differences.append(Difference(key[0], key[1], have, want))
    if fix and report.differences:
        for diff in report.differences:
            if diff.ledger is None:
                session.execute(
                    delete(ConsentState).where(
                        ConsentState.customer_id == diff.customer_id,
                        ConsentState.purpose == diff.purpose,
                    )
                )
            else:
                _write_state(
                    session, diff.projection, diff.ledger, now, diff.customer_id, diff.purpose
                )
        session.flush()
        report.fixed = True
    return report
