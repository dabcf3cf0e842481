from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlmodel import Session

from vault.events import outbox as events_outbox
from vault.events import webhooks as events_webhooks
from vault.events.models import WebhookDelivery
from vault.provenance import Caller
from vault.runtime import Runtime


def subscribe(
    runtime: Runtime,
    url: str,
    events: Sequence[str] = ("consent.withdrawn", "customer.updated"),
    by: Caller = Caller("cli"),
):
    with Session(runtime.engine, expire_on_commit=False) as s:
        webhook, secret = events_webhooks.create_webhook(
            session=s,
            envelope=runtime.envelope,
            settings=runtime.settings,
            url=url,
            events=list(events),
            by=by,
            subscriber=None,  # the operator's rule: every type
        )
        s.commit()
    return webhook, secret


def emit_many(
    runtime: Runtime,
    customers: Sequence[uuid.UUID],
    per_customer: int,
    type: str = "customer.updated",
) -> list[uuid.UUID]:
    """``per_customer`` events for each customer, interleaved; returns the event ids in order."""
    ids = []
    with Session(runtime.engine) as s:
        for k in range(per_customer):
            for cid in customers:
                ids.append(events_outbox.emit(session=s, type=type, customer_id=cid, data={"k": k}))
        s.commit()
    return ids


def deliveries(runtime: Runtime) -> list[WebhookDelivery]:
    with Session(runtime.engine) as s:
        return list(
            s.execute(select(WebhookDelivery).order_by(WebhookDelivery.event_seq)).scalars()
        )


def drain(worker, until: Callable[[], bool], timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if until():
            return True
        if not worker.run_once():
            time.sleep(0.02)
    return until()


def nth(runtime: Runtime, i: int) -> WebhookDelivery | None:
    """The i-th delivery in event order, or None while it does not exist yet."""
    rows = deliveries(runtime)
    return rows[i] if len(rows) > i else None


def tried(runtime: Runtime, i: int) -> bool:
    row = nth(runtime, i)
    return row is not None and row.attempts > 0


def in_state(runtime: Runtime, i: int, status: str) -> bool:
    row = nth(runtime, i)
    return row is not None and row.status == status
