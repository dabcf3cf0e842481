"""How webhook delivery is doing, for the privacy office's health page (read only).

Counts by state (:func:`vault.events.queue.counts`), the oldest delivery still waiting and the
oldest outbox event not yet fanned out, and the last failed or dead-lettered deliveries with
their short error code. A subscription is named by its id and its URL's host only: the path or
query of a downstream tool's URL may carry a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import func, select
from sqlmodel import Session

from vault.events import queue
from vault.events.models import DeliveryStatus, OutboxEvent, Webhook, WebhookDelivery

_D = WebhookDelivery.__table__
_O = OutboxEvent.__table__
_W = Webhook.__table__
OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)
FAILED = (DeliveryStatus.FAILED.value, DeliveryStatus.DEAD.value)


@dataclass(frozen=True, slots=True)
class Failure:
    webhook_id: UUID
    host: str
    event_type: str
    status: str  # failed (a retry is scheduled) | dead
    attempts: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class Health:
    counts: dict[str, int]  # per delivery state, plus "undispatched" outbox events
    oldest_open: datetime | None  # created_at of the oldest pending or failed delivery
    oldest_undispatched: datetime | None  # occurred_at of the oldest event not fanned out
    failures: list[Failure]


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def health(session: Session, *, failures: int = 10) -> Health:
    oldest_open = session.execute(
        select(func.min(_D.c.created_at)).where(_D.c.status.in_(OPEN))
    ).scalar_one_or_none()
    oldest_undispatched = session.execute(
        select(func.min(_O.c.occurred_at)).where(_O.c.dispatched_at.is_(None))
    ).scalar_one_or_none()
    rows = session.execute(
        select(
            _D.c.webhook_id,
            _W.c.url,
            _O.c.type,
            _D.c.status,
            _D.c.attempts,
            _D.c.last_attempt_at,
            _D.c.last_status_code,
            _D.c.last_error,
            _D.c.next_attempt_at,
        )
        .join(_W, _W.c.id == _D.c.webhook_id)
        .join(_O, _O.c.seq == _D.c.event_seq)
        .where(_D.c.status.in_(FAILED))
        .order_by(_D.c.last_attempt_at.desc(), _D.c.id.desc())
        .limit(failures)
    )
    return Health(
        counts=queue.counts(session),
        oldest_open=oldest_open,  # min() keeps the column's type: UTC-aware on every database
        oldest_undispatched=oldest_undispatched,
        failures=[
            Failure(
                webhook_id=r.webhook_id,
                host=_host(r.url),
                event_type=r.type,
                status=r.status,
                attempts=r.attempts,
                last_attempt_at=r.last_attempt_at,
                last_status_code=r.last_status_code,
                last_error=r.last_error,
                next_attempt_at=r.next_attempt_at if r.status == DeliveryStatus.FAILED else None,
            )
            for r in rows
        ],
    )
