"""Writing the consent ledger: record statements, confirm double opt-in grants.

How a decision is written (the rule itself, pure, is :mod:`vault.consent.rules`; reads are
:mod:`vault.consent.reads`):

- Every statement is a ``consent_event`` row (append-only; triggers refuse UPDATE and DELETE).
- ``consent_state`` holds the *deciding* event per (customer, purpose), written in the same
  transaction as the event by :func:`vault.consent.rules.apply`; a late event is kept but
  decides nothing. Reads judge it with :func:`vault.consent.rules.effective_status`.
- The event, its audit row, its outbox row and the projection commit together.
- Writes lock the customer row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
  IMMEDIATE`` already serialises writers), so concurrent writers for one customer queue and the
  projection always equals the replay of the ledger.

Services never commit; the request's transaction does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import select
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.config import Settings
from vault.consent import doi
from vault.consent import store as consent_store
from vault.consent.errors import (
    ChannelNotAllowed,
    ConfirmationByRecorder,
    ConfirmationSuperseded,
    ConfirmationTokenExpired,
    ConfirmationTokenNotFound,
    ConfirmationTokenUsed,
    ConsentNotApplicable,
    InvalidConsentStatus,
    OccurredInFuture,
    OccurredTooLongAgo,
)
from vault.consent.evidence import clean_evidence
from vault.consent.models import (
    Channel,
    ConsentConfirmation,
    ConsentEvent,
    ConsentStatus,
)
from vault.consent.rules import CLOCK_SKEW, apply, as_projection
from vault.consent.store import LedgerEvent, Statement, StateRecord
from vault.crypto.envelope import Envelope
from vault.crypto.signing import Signer
from vault.customers import store as customers_store
from vault.db import OUT_OF_RANGE, OUT_OF_RANGE_MESSAGE, in_range, utcnow
from vault.errors import InvalidRequest
from vault.events import outbox as events_outbox
from vault.events.outbox import EventType
from vault.policy import Policy, Purpose
from vault.policy.errors import UnknownPurpose
from vault.provenance import Caller

CONFIRMATION_TTL = doi.CONFIRMATION_TTL
# the import's door to double opt-in (other domains reach consent through this module)
request_confirmation = doi.request_confirmation
WRITABLE_STATUSES = frozenset(
    {ConsentStatus.GRANTED, ConsentStatus.WITHDRAWN, ConsentStatus.REFUSED}
)


# --- writing ------------------------------------------------------------------------------


class RecordResult(NamedTuple):
    event: LedgerEvent
    state: StateRecord
    receipt: str
    confirmation_token: str | None
    applied: bool
    # double opt-in: where the token went (doi.Delivery: mail, caller, no_email), else None
    confirmation_delivery: str | None = None


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


def check_occurred_at(
    occurred_at: datetime | None, *, now: datetime, backdate_days: int, late_import: bool
) -> datetime:
    """When a statement may say it was made (every door: the API, the import, the pages):
    1900 to 2100; at most :data:`CLOCK_SKEW` ahead of ``now``; and at most ``backdate_days``
    (``VAULT_CONSENT_BACKDATE_DAYS``) back unless the caller says ``late_import`` (a statement
    collected long ago, e.g. from a system being migrated). ``None`` is ``now``."""
    if occurred_at is None:
        return now
    if not in_range(occurred_at):
        raise InvalidRequest(f"occurred_at must be {OUT_OF_RANGE_MESSAGE}.", code=OUT_OF_RANGE)
    if occurred_at > now + CLOCK_SKEW:
        raise OccurredInFuture()
    if not late_import and occurred_at < now - timedelta(days=backdate_days):
        raise OccurredTooLongAgo(
            f"occurred_at lies more than {backdate_days} days in the past; send late_import: "
            "true to record a statement collected that long ago."
        )
    return occurred_at


def lock_customer_state(session: Session, customer_id: UUID, purpose: str) -> StateRecord | None:
    """:func:`vault.customers.store.lock_customer`, then the current state of one purpose.

    Two statements on purpose: on PostgreSQL a ``SELECT ... JOIN ... FOR UPDATE OF customer``
    that waited for the lock re-reads only the locked row and would return the joined state
    as of before the wait (stale); a new statement after the lock sees the committed state."""
    customers_store.lock_customer(session, customer_id)
    return consent_store.read_state(session, customer_id, purpose)


_token_hash = doi.token_hash


def customer_actor(customer_id: UUID) -> str:
    """The actor of what a customer does themselves on the self-service pages."""
    return f"customer:{customer_id}"


def _append(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    statement: Statement,
    now: datetime,
    current: StateRecord | None,
    by: Caller,
    late_import: bool = False,
) -> tuple[LedgerEvent, StateRecord, bool]:
    """Insert one event (Core, no ORM objects: this is the hot path) and apply it."""
    event = consent_store.insert_event(
        session,
        consent_store.event_row(
            signer=signer,
            issuer=settings.issuer,
            policy=policy,
            statement=statement,
            recorded_by=by.actor,
            now=now,
        ),
    )
    purpose, customer_id = statement.purpose, statement.customer_id
    projection, applied = apply(as_projection(current), event)
    # Every consent change is also an audit event (who recorded what, never evidence values).
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.CONSENT_RECORDED,
        customer_id=customer_id,
        purpose=purpose.id,
        reason=None if applied else "late_event",
        details={
            "status": statement.status,
            "channel": statement.channel,
            "version": statement.version,
            # the caller vouched for a statement dated beyond the backdating horizon
            **({"late_import": True} if late_import else {}),
        },
        now=now,
    )
    if applied:
        assert projection is not None
        state = consent_store.write_state(
            session, current, projection, now, customer_id, purpose.id
        )
        _emit(session, event, now)
    else:
        assert current is not None
        state = current
    return event, state, applied


# vault.events: what downstream tools are told when a statement decides (ids, purpose, status,
# time; no PII). A refusal is a withdrawal to a recipient; pending_confirmation tells nothing
# yet; consent.expired is emitted by the worker when it first observes the expiry.
_OUTBOX_TYPES = {
    ConsentStatus.GRANTED: EventType.CONSENT_GRANTED,
    ConsentStatus.CONFIRMED: EventType.CONSENT_GRANTED,
    ConsentStatus.WITHDRAWN: EventType.CONSENT_WITHDRAWN,
    ConsentStatus.REFUSED: EventType.CONSENT_WITHDRAWN,
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
    by: Caller,
    method: str = "unspecified",
    actor: str = "customer",
    language: str = "de",
    occurred_at: datetime | None = None,
    evidence: Mapping[str, Any] | None = None,
    late_import: bool = False,
    envelope: Envelope | None = None,
    token_to_caller: bool = False,
    now: datetime | None = None,
) -> RecordResult:
    """Record one consent statement of a customer and update the projection with it.

    ``status`` is what the customer said: ``granted``, ``withdrawn`` or ``refused``. For a
    double opt-in purpose a grant is recorded as ``pending_confirmation`` and a single-use
    confirmation token (valid 7 days, stored only as its hash) is made by
    :func:`vault.consent.doi.request_confirmation`: mailed to the customer (``envelope``
    required), or returned when ``token_to_caller`` (an app holding ``consent:confirm``); only
    :func:`confirm` makes it count. ``channel`` ``selfservice`` is the customer's own door:
    refused (ChannelNotAllowed) unless ``by`` is the customer themself. A withdrawal of a
    consent never given is recorded too.
    ``occurred_at`` (default ``now``) may lie at most 2 minutes ahead and, unless
    ``late_import``, at most ``settings.consent_backdate_days`` back
    (:func:`check_occurred_at`); an older one than the current decision is kept in the ledger
    without deciding (``applied`` is false).
    ``channel`` names the door (``selfservice`` for the self-service page), ``actor`` who spoke
    (``customer`` or ``staff:<id>``), ``recorded_by`` who wrote it (``client:<id>``).
    ``evidence`` must hold no contact data; IP addresses are truncated.

    Raises UnknownPurpose, ConsentNotApplicable, InvalidConsentStatus, OccurredInFuture,
    OccurredTooLongAgo, InvalidEvidence, EvidenceKeyNotAllowed, EvidenceContainsContactData,
    CustomerNotFound, CustomerErased."""
    now = now or utcnow()
    the_purpose = consent_purpose(policy, purpose)
    if status not in WRITABLE_STATUSES:
        raise InvalidConsentStatus()
    if channel not in Channel.__members__.values():
        raise InvalidRequest(f"Unknown channel '{channel[:32]}'.", code="invalid_channel")
    if channel == Channel.SELFSERVICE and by.actor != customer_actor(customer_id):
        raise ChannelNotAllowed()
    occurred_at = check_occurred_at(
        occurred_at,
        now=now,
        backdate_days=settings.consent_backdate_days,
        late_import=late_import,
    )
    clean = clean_evidence(evidence)
    current = lock_customer_state(session, customer_id, the_purpose.id)
    if status == ConsentStatus.GRANTED and the_purpose.double_opt_in:
        status = ConsentStatus.PENDING_CONFIRMATION
    event, row, applied = _append(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        statement=Statement(
            customer_id=customer_id,
            purpose=the_purpose,
            version=the_purpose.version,
            status=status,
            channel=channel,
            method=method,
            actor=actor,
            language=language,
            occurred_at=occurred_at,
            evidence=clean,
        ),
        by=by,
        now=now,
        current=current,
        late_import=late_import,
    )
    if applied and status == ConsentStatus.PENDING_CONFIRMATION:
        requested = doi.request_confirmation(
            session=session,
            policy=policy,
            settings=settings,
            envelope=envelope,
            customer_id=customer_id,
            purpose=the_purpose,
            event_id=event.id,
            now=now,
            to_caller=token_to_caller,
        )
        return RecordResult(event, row, event.receipt, requested.token, applied, requested.delivery)
    return RecordResult(event, row, event.receipt, None, applied)


@dataclass(frozen=True, repr=False)
class Pending:
    """A confirmation that may still be pressed: what its page shows."""

    customer_id: UUID
    purpose: Purpose
    expires_at: datetime
    mail_id: UUID | None

    def __repr__(self) -> str:
        return f"Pending(customer_id={self.customer_id}, purpose={self.purpose.id}, ***)"


def _usable(
    session: Session, policy: Policy, conf: ConsentConfirmation, now: datetime
) -> tuple[Purpose, StateRecord]:
    """The checks every use of a token makes, in this order (the page shows the first that
    fails): used, expired, the purpose gone, superseded by a later decision."""
    if conf.used_at is not None:
        raise ConfirmationTokenUsed()
    if conf.expires_at < now:
        raise ConfirmationTokenExpired()
    purpose = policy.purposes.get(conf.purpose)
    if purpose is None or not purpose.needs_consent:
        raise ConfirmationSuperseded("The purpose of this token no longer takes consent.")
    row = consent_store.read_state(session, conf.customer_id, conf.purpose)
    if row is None or row.event_id != conf.event_id:
        raise ConfirmationSuperseded()
    return purpose, row


def pending_confirmation(
    *, session: Session, policy: Policy, token: str, now: datetime | None = None
) -> Pending:
    """What a confirmation token would confirm, without confirming it (the page's GET: mail
    scanners open links). Raises what :func:`confirm` would."""
    now = now or utcnow()
    conf = session.get(ConsentConfirmation, _token_hash(token))
    if conf is None:
        raise ConfirmationTokenNotFound()
    purpose, _row = _usable(session, policy, conf, now)
    return Pending(conf.customer_id, purpose, conf.expires_at, conf.mail_id)


def confirm(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    token: str,
    by: Caller,
    evidence: Mapping[str, Any] | None = None,
    on_page: bool = False,
    now: datetime | None = None,
) -> RecordResult:
    """Confirm a double opt-in grant with its token: records a ``confirmed`` event.

    The token is single use (second use: ConfirmationTokenUsed, 409), valid 7 days
    (ConfirmationTokenExpired, 410), and only confirms the grant it was issued for while that
    grant is still the current decision (ConfirmationSuperseded, 409).

    ``on_page``: the customer pressed the button of the vault's confirmation page; the
    evidence (``ip``, ``user_agent``) gets the ``mail_id`` of the mail that carried the token.
    Otherwise an app confirms through the API: only a token that was handed to an app (the
    vault mailed none: else 404, the mail's link is for the customer's browser), and never by
    the client that recorded the grant (ConfirmationByRecorder, 403)."""
    now = now or utcnow()
    conf = session.get(ConsentConfirmation, _token_hash(token))
    if conf is None or (not on_page and conf.mail_id is not None):
        raise ConfirmationTokenNotFound()
    customers_store.lock_customer(session, conf.customer_id)
    session.refresh(conf, with_for_update=True)  # see a concurrent confirmation's commit
    purpose, row = _usable(session, policy, conf, now)
    pending = session.execute(
        select(ConsentEvent).where(ConsentEvent.id == conf.event_id)
    ).scalar_one()
    if not on_page and pending.recorded_by == by.actor:
        raise ConfirmationByRecorder()
    extra = {"mail_id": str(conf.mail_id)} if on_page and conf.mail_id is not None else {}
    clean = clean_evidence({**(evidence or {}), **extra})
    conf.used_at = now
    session.add(conf)
    session.flush()
    event, row, applied = _append(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        statement=Statement(
            customer_id=conf.customer_id,
            purpose=purpose,
            version=pending.purpose_version,
            status=ConsentStatus.CONFIRMED,
            channel=Channel.EMAIL,
            method="double_opt_in_confirmation",
            actor="customer",
            language=pending.language,
            # never before the grant it confirms, even if that one was dated slightly ahead
            occurred_at=max(now, row.decided_at),
            evidence=clean,
        ),
        by=by,
        now=now,
        current=row,
    )
    return RecordResult(event, row, event.receipt, None, applied)
