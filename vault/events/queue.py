"""The delivery queue: dispatch outbox events, claim deliveries, record their outcome.

The states of a ``webhook_delivery``::

    pending --attempt ok--> delivered
       |  \\--attempt failed--> failed --(backoff elapsed) attempt ok--> delivered
       |                          \\--attempt N failed--> dead --redeliver--> pending

- **Dispatch** turns each committed outbox row into one delivery per active subscription that
  wants its type (and existed when the event happened, and whose creating client still holds a
  scope that reads the type: :data:`vault.events.webhooks.READ_WITH`), then stamps
  ``dispatched_at``. One
  dispatcher at a time (``pg_try_advisory_xact_lock`` on PostgreSQL; SQLite's write lock), so
  the deliveries of one customer are created in ``seq`` order.
- **Claim** takes up to *n* due deliveries and leases them to one worker (``claimed_until``):
  ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (two workers never take the same row),
  ``BEGIN IMMEDIATE`` on SQLite. Only the *head* of each (subscription, customer) queue is
  due: a delivery waits while an earlier event of the same customer to the same subscription
  is pending or failed, so events of one customer arrive in order. A dead-lettered event no
  longer blocks the ones after it (otherwise one bad event would stop a customer's stream
  for good); ``redeliver`` puts it back in front.
- A worker killed mid-batch leaves its rows leased; after ``webhook_lease_seconds`` another
  worker claims them again: at-least-once delivery. The lease outlasts a request
  (``webhook_timeout``; the settings refuse otherwise), so an event is never sent by two
  workers at the same time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlmodel import Session

from vault.auth import service as auth_service
from vault.config import Settings
from vault.db import try_advisory_lock
from vault.events.models import (
    DeliveryStatus,
    OutboxEvent,
    Webhook,
    WebhookDelivery,
    WebhookStatus,
)
from vault.events.outbox import EVENT_TYPES
from vault.events.webhooks import readable_types

_O = OutboxEvent.__table__
_W = Webhook.__table__
_D = WebhookDelivery.__table__
_OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)
_ALL = frozenset(EVENT_TYPES)

# pg_try_advisory_xact_lock keys ("vault" events: dispatch, expiry sweep)
_DISPATCH_LOCK = 0x7661756C7401


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def split_events(events: str) -> list[str]:
    return [e for e in events.split(",") if e]


# --- dispatch -----------------------------------------------------------------------------


def dispatch(*, session: Session, now: datetime, limit: int = 1000) -> int:
    """Fan committed outbox rows out to the subscriptions; returns the number of events
    dispatched (0 if another worker is dispatching right now)."""
    if not try_advisory_lock(session, _DISPATCH_LOCK):
        return 0
    rows = session.execute(
        select(_O.c.seq, _O.c.type, _O.c.customer_id, _O.c.occurred_at)
        .where(_O.c.dispatched_at.is_(None))
        .order_by(_O.c.seq)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    hooks = session.execute(
        select(_W.c.id, _W.c.events, _W.c.created_at, _W.c.created_by).where(
            _W.c.status == WebhookStatus.ACTIVE.value
        )
    ).all()
    # A subscription made by an app client gets only what that client may read now (a scope
    # taken away, a disabled or deleted client: those events are not dispatched to it);
    # subscriptions made by the operator (CLI) are not limited.
    creators = auth_service.current_principals(session, {h.created_by for h in hooks})
    wanted = [
        (
            h.id,
            frozenset(split_events(h.events))
            & (readable_types(creators[h.created_by]) if h.created_by in creators else _ALL),
            h.created_at,
        )
        for h in hooks
    ]
    deliveries = [
        {
            "webhook_id": hook_id,
            "event_seq": row.seq,
            "customer_id": row.customer_id,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for row in rows
        for hook_id, types, created_at in wanted
        if row.type in types and created_at <= row.occurred_at
    ]
    if deliveries:
        session.execute(insert(_D), deliveries)
    session.execute(update(_O).where(_O.c.seq.in_([r.seq for r in rows])).values(dispatched_at=now))
    return len(rows)


# --- claim --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One claimed delivery with everything needed to send it."""

    delivery_id: int
    webhook_id: UUID
    url: str
    secret_ciphertext: bytes
    previous_secret_ciphertext: bytes | None
    previous_secret_until: datetime | None
    event_id: UUID
    event_seq: int
    type: str
    customer_id: UUID | None
    occurred_at: datetime
    data: dict[str, Any]
    attempts: int

    def __repr__(self) -> str:
        return f"Job(delivery={self.delivery_id}, webhook={self.webhook_id}, event={self.event_id})"


def _due(now: datetime) -> Any:
    earlier = _D.alias("earlier")
    blocked = exists(
        select(earlier.c.id).where(
            earlier.c.webhook_id == _D.c.webhook_id,
            earlier.c.customer_id == _D.c.customer_id,
            earlier.c.event_seq < _D.c.event_seq,
            earlier.c.status.in_(_OPEN),
        )
    )
    return and_(
        _D.c.status.in_(_OPEN),
        _D.c.next_attempt_at <= now,
        or_(_D.c.claimed_until.is_(None), _D.c.claimed_until < now),
        ~blocked,
    )


def claim(
    *, session: Session, worker_id: str, now: datetime, lease: timedelta, limit: int
) -> list[Job]:
    """Lease up to ``limit`` due deliveries of active subscriptions to ``worker_id``.

    The caller commits at once, so the lease is visible to the other workers before any
    request is sent."""
    candidates = (
        select(_D.c.id)
        .join(_W, _W.c.id == _D.c.webhook_id)
        .where(_W.c.status == WebhookStatus.ACTIVE.value, _due(now))
        .order_by(_D.c.event_seq)
        .limit(limit)
    )
    claim_them = update(_D).values(claimed_until=now + lease, claimed_by=worker_id)
    if _is_pg(session):
        # A materialized CTE, as the mail outbox's claim: with "IN (subquery) FOR UPDATE SKIP
        # LOCKED" PostgreSQL may rescan the subquery while the UPDATE runs and hand out more
        # rows than ``limit`` (the rows this statement has just locked are skipped).
        due = (
            candidates.with_for_update(of=_D, skip_locked=True)
            .cte("due_delivery")
            .prefix_with("MATERIALIZED")
        )
        claim_them = claim_them.where(_D.c.id == due.c.id)
    else:  # one writer at a time (BEGIN IMMEDIATE): the subquery is evaluated once
        claim_them = claim_them.where(_D.c.id.in_(candidates.scalar_subquery()))
    ids = list(session.execute(claim_them.returning(_D.c.id)).scalars())
    if not ids:
        return []
    rows = session.execute(
        select(
            _D.c.id.label("delivery_id"),
            _D.c.webhook_id,
            _D.c.attempts,
            _W.c.url,
            _W.c.secret_ciphertext,
            _W.c.previous_secret_ciphertext,
            _W.c.previous_secret_until,
            _O.c.id.label("event_id"),
            _O.c.seq.label("event_seq"),
            _O.c.type,
            _O.c.customer_id,
            _O.c.occurred_at,
            _O.c.data,
        )
        .join(_W, _W.c.id == _D.c.webhook_id)
        .join(_O, _O.c.seq == _D.c.event_seq)
        .where(_D.c.id.in_(ids))
        .order_by(_D.c.event_seq)
    ).all()
    return [Job(**r._mapping) for r in rows]


# --- outcome ------------------------------------------------------------------------------


def backoff(attempts: int, settings: Settings, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: base * 2**(attempts-1), capped, then a random 50-100%
    of it (so retries of many deliveries spread out)."""
    rng = rng or random
    delay = min(settings.webhook_backoff_max, settings.webhook_backoff_base * 2 ** (attempts - 1))
    return timedelta(seconds=delay * (0.5 + rng.random() / 2))


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None


def complete(
    *,
    session: Session,
    job: Job,
    worker_id: str,
    outcome: Outcome,
    settings: Settings,
    now: datetime,
) -> str:
    """Record one attempt; returns the new state. A worker that lost its lease records
    nothing (the worker that holds it now will)."""
    attempts = job.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status_code": outcome.status_code,
        "last_error": (outcome.error or None) and outcome.error[:200],
        "claimed_until": None,
        "claimed_by": None,
    }
    if outcome.ok:
        state = DeliveryStatus.DELIVERED
        values.update(status=state.value, delivered_at=now)
    elif attempts >= settings.webhook_max_attempts:
        state = DeliveryStatus.DEAD
        values.update(status=state.value)
    else:
        state = DeliveryStatus.FAILED
        values.update(status=state.value, next_attempt_at=now + backoff(attempts, settings))
    session.execute(
        update(_D).where(_D.c.id == job.delivery_id, _D.c.claimed_by == worker_id).values(**values)
    )
    return state.value


# --- counts -------------------------------------------------------------------------------


def counts(session: Session) -> dict[str, int]:
    """Deliveries per state, plus ``undispatched`` outbox events."""
    out = {s.value: 0 for s in DeliveryStatus}
    for status, n in session.execute(select(_D.c.status, func.count()).group_by(_D.c.status)):
        out[status] = n
    out["undispatched"] = session.execute(
        select(func.count()).select_from(_O).where(_O.c.dispatched_at.is_(None))
    ).scalar_one()
    return out
