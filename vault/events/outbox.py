"""The outbox: events written in the transaction of the change they describe.

:func:`emit` is what every domain calls (consent, customers, dsr), naming the type with
:class:`EventType`; other domains import only this module of ``vault.events``. It inserts one
``outbox_event`` row on the caller's connection and never commits, so the event exists if and
only if the change does. Payloads carry ids, purpose, status and times — never attribute values:
recipients fetch data through the access API, where consent is checked and the read is audited.

Everything after the commit (fan-out to subscriptions, signing, delivery, retries) is the
worker's job: see :mod:`vault.events.worker`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

import orjson
from sqlalchemy import select
from sqlmodel import Session

from vault.db import DriverSQL, db_time, db_uuid, utcnow
from vault.events.errors import InvalidEvent
from vault.events.models import OutboxEvent


class EventType(StrEnum):
    CONSENT_GRANTED = "consent.granted"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    CONSENT_EXPIRED = "consent.expired"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_RESTRICTED = "customer.restricted"
    CUSTOMER_OBJECTED = "customer.objected"
    CUSTOMER_ERASED = "customer.erased"
    PREFERENCE_CHANGED = "preference.changed"


EVENT_TYPES = frozenset(t.value for t in EventType)

_OUTBOX = OutboxEvent.__table__


def _plain_text(data: dict[str, Any]) -> str:
    # :func:`_plain` as the JSON text the row stores (one encoding instead of three)
    try:
        return orjson.dumps(data).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidEvent("event data must be plain JSON values") from exc


# driver SQL: consent writes emit on every decision
_INSERT_SQL = DriverSQL(
    "INSERT INTO outbox_event (id, type, customer_id, data, occurred_at, dispatched_at, "
    "dedupe_key) VALUES (?, ?, ?, ?j, ?, NULL, ?)"
)


def emit(
    *,
    session: Session,
    type: str,
    customer_id: UUID | None,
    data: Mapping[str, Any],
    now: datetime | None = None,
    dedupe_key: str | None = None,
) -> UUID:
    """Write one outbox row in the caller's transaction (one Core INSERT; never commits).

    ``data`` holds ids, purpose, status and times only; ``customer_id`` is added to it. With a
    ``dedupe_key`` a second event with the same key fails the transaction (unique constraint).
    Returns the event id."""
    if type not in EVENT_TYPES:
        raise InvalidEvent(f"unknown event type {type[:64]!r}")
    now = now or utcnow()
    event_id = uuid4()
    payload = _plain_text({"customer_id": customer_id, **data})
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    _INSERT_SQL.run(
        conn,
        (
            db_uuid(event_id, sqlite),
            type,
            db_uuid(customer_id, sqlite),
            payload,
            db_time(now, sqlite),
            dedupe_key,
        ),
    )
    return event_id


def emitted_keys(session: Session, keys: Sequence[str]) -> set[str]:
    """The ``dedupe_key`` values among ``keys`` that an emitted event already holds (to emit
    an announcement once, e.g. ``consent.expired``)."""
    seen: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        seen.update(
            session.execute(
                select(_OUTBOX.c.dedupe_key).where(_OUTBOX.c.dedupe_key.in_(chunk))
            ).scalars()
        )
    return seen
