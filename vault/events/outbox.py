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
from sqlalchemy import insert, select
from sqlmodel import Session

from vault.db import utcnow
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
_INSERT = insert(_OUTBOX)


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    # UUIDs and datetimes become strings (orjson: RFC 3339 for datetimes); anything else that
    # is not plain JSON is refused rather than stringified.
    try:
        return orjson.loads(orjson.dumps(dict(data)))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidEvent("event data must be plain JSON values") from exc


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
    payload = _plain({"customer_id": customer_id, **data})
    session.connection().execute(
        _INSERT,
        {
            "id": event_id,
            "type": type,
            "customer_id": customer_id,
            "data": payload,
            "occurred_at": now,
            "dispatched_at": None,
            "dedupe_key": dedupe_key,
        },
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
