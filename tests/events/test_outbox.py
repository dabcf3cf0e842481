"""emit(): one outbox row in the caller's transaction, plain JSON, ids only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from vault.events import outbox as events_outbox
from vault.events.errors import InvalidEvent
from vault.events.models import OutboxEvent


def _rows(runtime) -> list[OutboxEvent]:
    with Session(runtime.engine) as s:
        return list(s.execute(select(OutboxEvent).order_by(OutboxEvent.seq)).scalars())


def test_emit_commits_with_the_callers_transaction(runtime):
    cid = uuid.uuid4()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with Session(runtime.engine) as s:
        event_id = events_outbox.emit(
            session=s,
            type="consent.withdrawn",
            customer_id=cid,
            data={"purpose": "newsletter", "status": "withdrawn", "occurred_at": when},
            now=when,
        )
        s.commit()
    (row,) = _rows(runtime)
    assert row.id == event_id
    assert row.type == "consent.withdrawn"
    assert row.customer_id == cid
    assert row.occurred_at == when
    assert row.dispatched_at is None
    assert row.data == {
        "customer_id": str(cid),
        "purpose": "newsletter",
        "status": "withdrawn",
        "occurred_at": "2026-01-02T03:04:05+00:00",
    }


def test_emit_rolls_back_with_the_callers_transaction(runtime):
    with Session(runtime.engine) as s:
        events_outbox.emit(session=s, type="customer.erased", customer_id=uuid.uuid4(), data={})
        s.rollback()
    with Session(runtime.engine) as s:
        assert s.execute(select(func.count()).select_from(OutboxEvent)).scalar_one() == 0


def test_emit_never_commits(runtime):
    with Session(runtime.engine) as s:
        events_outbox.emit(session=s, type="customer.updated", customer_id=None, data={})
        assert s.in_transaction()
        s.rollback()
    assert _rows(runtime) == []


def test_emit_orders_events_by_seq(runtime):
    cid = uuid.uuid4()
    with Session(runtime.engine) as s:
        for t in ("consent.granted", "consent.withdrawn", "customer.erased"):
            events_outbox.emit(session=s, type=t, customer_id=cid, data={})
        s.commit()
    assert [r.type for r in _rows(runtime)] == [
        "consent.granted",
        "consent.withdrawn",
        "customer.erased",
    ]


@pytest.mark.parametrize(
    ("kind", "data"),
    [("consent.deleted", {}), ("customer.erased", {"blob": object()})],
)
def test_emit_refuses_unknown_types_and_non_json_data(runtime, kind, data):
    with Session(runtime.engine) as s, pytest.raises(InvalidEvent):
        events_outbox.emit(session=s, type=kind, customer_id=None, data=data)
