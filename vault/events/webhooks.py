"""Webhook subscriptions: create, list, disable, rotate the secret, redeliver, list deliveries.

Every change is audited (the URL stays out of the audit log) and never committed here; the
deliveries themselves are made by :mod:`vault.events.queue` and :mod:`vault.events.worker`.

Who may subscribe to what (:data:`READ_WITH`): an event tells its receiver something about a
customer, so an app client may subscribe only to event types that one of its own scopes could
read through the API (``data:read`` reads only with a registered purpose). ``webhooks:manage``
alone reads nothing. The rule holds for the life of the subscription: dispatch judges each
client-made subscription by its creator as it is *now* (:func:`vault.events.queue.dispatch`),
as a token loses a scope taken from its client.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select, true, update
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.auth.scopes import Scope
from vault.auth.service import Principal
from vault.config import Settings
from vault.crypto.envelope import Envelope
from vault.db import utcnow
from vault.errors import InvalidRequest
from vault.events.errors import (
    DeliveryNotFound,
    EventTypeNotPermitted,
    WebhookDisabled,
    WebhookNotFound,
)
from vault.events.models import (
    DeliveryStatus,
    OutboxEvent,
    Webhook,
    WebhookDelivery,
    WebhookStatus,
)
from vault.events.outbox import EVENT_TYPES, EventType
from vault.events.schemas import DeliveryPublic, WebhookPublic, WebhookWithSecret
from vault.events.secrets import decrypt_secret, encrypt_secret, generate_secret, sealing_kek
from vault.events.urls import Allowlist, Resolver, check_url
from vault.provenance import Caller

SECRET_GRACE = timedelta(hours=24)
PAGE_MAX = 1000  # largest page of webhooks or deliveries

# Each event type, and the scopes any one of which reads what it tells (docs/events.md):
# consent events are consent state (GET .../consents); a rectification is told to whoever
# writes customers or reads their data (Art. 19: the recipients of the data); restriction,
# objection and erasure are told to the privacy team and to every recipient of data, who must
# stop (Arts. 17(2), 19) and who would meet them as 403/410 on its next read anyway.
_CONSENT = frozenset({Scope.CONSENT_READ.value})
_RECIPIENTS = frozenset({Scope.DATA_READ.value, Scope.DSR_EXECUTE.value})
READ_WITH: dict[str, frozenset[str]] = {
    EventType.CONSENT_GRANTED: _CONSENT,
    EventType.CONSENT_WITHDRAWN: _CONSENT,
    EventType.CONSENT_EXPIRED: _CONSENT,
    EventType.CUSTOMER_UPDATED: frozenset({Scope.CUSTOMERS_WRITE.value, Scope.DATA_READ.value}),
    EventType.CUSTOMER_RESTRICTED: _RECIPIENTS,
    EventType.CUSTOMER_OBJECTED: _RECIPIENTS,
    EventType.CUSTOMER_ERASED: _RECIPIENTS,
    # the customer's filters: read with GET .../preferences (consent:read), and obeyed by
    # every recipient that contacts customers (data:read: its next export already leaves out)
    EventType.PREFERENCE_CHANGED: frozenset({Scope.CONSENT_READ.value, Scope.DATA_READ.value}),
}


def readable_types(reader: Principal) -> frozenset[str]:
    """The event types ``reader`` may receive: those one of its scopes reads. ``data:read``
    without a registered purpose reads nothing, so it counts only with one."""
    scopes = set(reader.scopes)
    if not reader.purposes:
        scopes.discard(Scope.DATA_READ.value)
    return frozenset(t for t, needs in READ_WITH.items() if needs & scopes)


def _audit(
    *,
    session: Session,
    action: str,
    webhook: Webhook,
    now: datetime,
    by: Caller,
    **details: Any,
) -> None:
    # the URL stays out of the audit log: its path or query may carry a receiver's token
    audit_record.record(
        session=session,
        by=by,
        action=action,
        details={"webhook_id": str(webhook.id), **details},
        now=now,
    )


def create_webhook(
    *,
    session: Session,
    envelope: Envelope,
    settings: Settings,
    url: str,
    events: Sequence[str],
    by: Caller,
    subscriber: Principal | None,
    now: datetime | None = None,
    resolve: Resolver = socket.getaddrinfo,
) -> tuple[Webhook, str]:
    """Subscribe ``url`` to ``events``; returns the subscription and its signing secret (the
    only time the secret is returned, with :func:`rotate_secret`). ``subscriber`` is the
    calling client (``None``: the operator, on the command line, who may subscribe to
    anything).

    Raises InvalidRequest (unknown event type), EventTypeNotPermitted (403: a type the scopes
    do not read), WebhookUrlInvalid, WebhookPortForbidden, WebhookUrlForbidden,
    WebhookHostUnresolvable (SSRF checks)."""
    now = now or utcnow()
    types = sorted({str(e) for e in events})
    unknown = [t for t in types if t not in EVENT_TYPES]
    if not types or unknown:
        raise InvalidRequest(
            f"events must name known event types ({', '.join(sorted(EVENT_TYPES))}).",
            code="unknown_event_type",
        )
    if subscriber is not None:
        refused = [t for t in types if t not in readable_types(subscriber)]
        if refused:
            raise EventTypeNotPermitted(
                "The token's scopes do not read these event types: "
                + "; ".join(f"{t} needs {' or '.join(sorted(READ_WITH[t]))}" for t in refused)
                + "."
            )
    target = check_url(url, allow=Allowlist.of(settings), resolve=resolve)
    webhook_id = uuid4()
    secret = generate_secret()
    webhook = Webhook(
        id=webhook_id,
        url=target.url,
        events=",".join(types),
        status=WebhookStatus.ACTIVE,
        secret_ciphertext=encrypt_secret(envelope, webhook_id, secret),
        created_at=now,
        created_by=by.actor,
        updated_at=now,
    )
    session.add(webhook)
    session.flush()
    _audit(
        session=session,
        by=by,
        action=AuditAction.WEBHOOK_CREATED,
        webhook=webhook,
        now=now,
        events=types,
    )
    return webhook, secret


def _owned_by(by: Caller | None) -> Any:
    """An app client sees and changes only the subscriptions it created (another client's is
    404, as if it did not exist); the operator (CLI) and the system see all."""
    if by is None or not by.actor.startswith("client:"):
        return true()
    return Webhook.created_by == by.actor


def get_webhook(
    *, session: Session, webhook_id: UUID, for_update: bool = False, by: Caller | None = None
) -> Webhook:
    stmt = select(Webhook).where(Webhook.id == webhook_id, _owned_by(by))
    if for_update:
        stmt = stmt.with_for_update()
    webhook = session.execute(stmt).scalar_one_or_none()
    if webhook is None:
        raise WebhookNotFound()
    return webhook


def list_webhooks(
    *, session: Session, limit: int = PAGE_MAX, by: Caller | None = None
) -> list[Webhook]:
    query = (
        select(Webhook).where(_owned_by(by)).order_by(Webhook.created_at, Webhook.id).limit(limit)
    )
    return list(session.execute(query).scalars())


def disable_webhook(
    *,
    session: Session,
    webhook_id: UUID,
    by: Caller,
    now: datetime | None = None,
) -> Webhook:
    """Stop a subscription: no new deliveries are made for it, and its open (pending or
    failed) ones are dead-lettered with ``last_error = "webhook_disabled"``, so the metrics do
    not count them as pending forever. Disabling twice is a no-op (audited once)."""
    now = now or utcnow()
    webhook = get_webhook(session=session, webhook_id=webhook_id, for_update=True, by=by)
    if webhook.status == WebhookStatus.DISABLED:
        return webhook
    webhook.status = WebhookStatus.DISABLED
    webhook.disabled_at = now
    webhook.updated_at = now
    session.add(webhook)
    session.flush()
    d = WebhookDelivery.__table__
    session.execute(
        update(d)
        .where(
            d.c.webhook_id == webhook.id,
            d.c.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value]),
        )
        .values(status=DeliveryStatus.DEAD.value, last_error="webhook_disabled")
    )
    _audit(
        session=session,
        by=by,
        action=AuditAction.WEBHOOK_DISABLED,
        webhook=webhook,
        now=now,
    )
    return webhook


def rotate_secret(
    *,
    session: Session,
    envelope: Envelope,
    webhook_id: UUID,
    by: Caller,
    now: datetime | None = None,
) -> tuple[Webhook, str]:
    """A new signing secret. For 24 hours deliveries carry signatures under both the new and
    the old secret (Standard Webhooks allows several), so the receiver can switch over."""
    now = now or utcnow()
    webhook = get_webhook(session=session, webhook_id=webhook_id, for_update=True, by=by)
    if webhook.status == WebhookStatus.DISABLED:
        raise WebhookDisabled()
    secret = generate_secret()
    webhook.previous_secret_ciphertext = webhook.secret_ciphertext
    webhook.previous_secret_until = now + SECRET_GRACE
    webhook.secret_ciphertext = encrypt_secret(envelope, webhook.id, secret)
    webhook.updated_at = now
    session.add(webhook)
    session.flush()
    _audit(
        session=session,
        by=by,
        action=AuditAction.WEBHOOK_SECRET_ROTATED,
        webhook=webhook,
        now=now,
    )
    return webhook, secret


def redeliver(
    *,
    session: Session,
    webhook_id: UUID,
    by: Caller,
    event_id: UUID | None = None,
    now: datetime | None = None,
) -> int:
    """Queue deliveries again: one event's (whatever its state), or else every dead-lettered
    one of the subscription. They go out at once, ahead of later events of their customer.
    Returns how many were queued."""
    now = now or utcnow()
    webhook = get_webhook(session=session, webhook_id=webhook_id, for_update=True, by=by)
    if webhook.status == WebhookStatus.DISABLED:
        raise WebhookDisabled()
    d = WebhookDelivery.__table__
    stmt = update(d).where(d.c.webhook_id == webhook.id)
    if event_id is not None:
        seq = session.execute(
            select(OutboxEvent.seq).where(OutboxEvent.id == event_id)
        ).scalar_one_or_none()
        if seq is None:
            raise DeliveryNotFound()
        stmt = stmt.where(d.c.event_seq == seq)
    else:
        stmt = stmt.where(d.c.status == DeliveryStatus.DEAD.value)
    requeued = session.execute(
        stmt.values(
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
            claimed_by=None,
        )
    ).rowcount
    if event_id is not None and requeued == 0:
        raise DeliveryNotFound()
    _audit(
        session=session,
        by=by,
        action=AuditAction.WEBHOOK_REDELIVERED,
        webhook=webhook,
        now=now,
        requeued=requeued,
        **({"event_id": str(event_id)} if event_id is not None else {}),
    )
    return requeued


def list_deliveries(
    *,
    session: Session,
    webhook_id: UUID,
    status: str | None = None,
    limit: int = 100,
    by: Caller | None = None,
) -> list[DeliveryPublic]:
    """The subscription's deliveries, newest event first."""
    get_webhook(session=session, webhook_id=webhook_id, by=by)
    stmt = (
        select(WebhookDelivery, OutboxEvent.id, OutboxEvent.type)
        .join(OutboxEvent, OutboxEvent.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.event_seq.desc())
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    return [
        DeliveryPublic(
            event_id=event_id,
            type=kind,
            customer_id=d.customer_id,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_attempt_at=d.last_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            delivered_at=d.delivered_at,
        )
        for d, event_id, kind in session.execute(stmt)
    ]


def public(webhook: Webhook) -> WebhookPublic:
    return WebhookPublic(
        id=webhook.id,
        url=webhook.url,
        events=webhook.events.split(","),
        status=webhook.status,
        created_at=webhook.created_at,
        updated_at=webhook.updated_at,
        disabled_at=webhook.disabled_at,
    )


def with_secret(webhook: Webhook, secret: str) -> WebhookWithSecret:
    return WebhookWithSecret(**public(webhook).model_dump(), secret=secret)


# --- key epochs: the KEK each signing secret is sealed under -------------------------------


def secrets_under(*, session: Session, kek_id: str) -> int:
    """How many signing secrets (current or previous) are sealed under ``kek_id``: a KEK that
    still seals one must not be retired."""
    rows = session.execute(
        select(Webhook.secret_ciphertext, Webhook.previous_secret_ciphertext)
    ).all()
    return sum(sealing_kek(blob) == kek_id for row in rows for blob in row)


def reseal_secrets(*, session: Session, envelope: Envelope) -> int:
    """Seal every signing secret not yet under the primary KEK anew under it (``vault keys
    rewrap`` and the worker's key epoch); returns how many were resealed."""
    primary = envelope.primary_kek_id
    done = 0
    for webhook in session.execute(select(Webhook)).scalars():
        for column in ("secret_ciphertext", "previous_secret_ciphertext"):
            blob = getattr(webhook, column)
            if blob is None or (sealing_kek(blob) == primary and blob[0] == 2):
                continue
            secret = decrypt_secret(envelope, webhook.id, blob)
            setattr(webhook, column, encrypt_secret(envelope, webhook.id, secret))
            done += 1
        session.add(webhook)
    session.flush()
    return done
