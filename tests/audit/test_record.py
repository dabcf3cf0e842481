"""record() and record_many(): one INSERT in the caller's transaction, validated, no PII."""

import uuid

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from vault.audit import errors as audit_errors
from vault.audit import record as audit_record
from vault.audit.models import AuditEvent
from vault.db import utcnow
from vault.provenance import Caller


def _count(runtime) -> int:
    with Session(runtime.engine) as s:
        return s.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def test_record_writes_in_the_callers_transaction(runtime):
    cid = uuid.uuid4()
    with Session(runtime.engine) as s:
        audit_record.record(
            session=s,
            by=Caller("client:cv_abc", "r1"),
            action="data.read",
            outcome="allowed",
            customer_id=cid,
            purpose="newsletter",
            attributes=["email", "first_name"],
            details={"count": 2},
        )
        s.rollback()
    assert _count(runtime) == 0
    with Session(runtime.engine) as s:
        audit_record.record(
            session=s,
            by=Caller("client:cv_abc", "r1"),
            action="data.read",
            outcome="allowed",
            customer_id=cid,
            purpose="newsletter",
            attributes=["email", "first_name"],
            details={"count": 2},
        )
        s.commit()
    with Session(runtime.engine) as s:
        row = s.exec(select(AuditEvent)).scalars().one()
    assert (row.actor_type, row.actor_id, row.action, row.outcome) == (
        "client",
        "cv_abc",
        "data.read",
        "allowed",
    )
    assert row.customer_id == cid and row.attributes == "email,first_name"
    assert row.details == '{"count":2}' and row.seq is None and row.hash is None


def test_record_many_inserts_all(runtime):
    events = [
        {
            "actor": "client:x",
            "action": "data.export",
            "customer_id": uuid.uuid4(),
            "purpose": "analytics",
        }
        for _ in range(500)
    ]
    with Session(runtime.engine) as s:
        audit_record.record_many(session=s, events=events)
        s.commit()
    assert _count(runtime) == 500


@pytest.mark.parametrize(
    "overrides",
    [
        {"actor": "somebody@example.de"},
        {"actor": ""},
        {"action": "read"},
        {"action": "Data.Read"},
        {"action": "a" * 40 + ".b" + "c" * 30},
        {"attributes": ["a" + "b" * 60] * 70},
        {"outcome": "maybe"},
        {"purpose": "News Letter"},
        {"attributes": ["e-mail"]},
        {"reason": "Customer said no"},
        {"customer_id": "not-a-uuid"},
        {"details": {"Bad Key": 1}},
        {"details": {"nested": {"deeper": {"x": 1}}}},
    ],
)
def test_record_refuses_malformed_events(runtime, overrides):
    args = {"actor": "client:x", "action": "data.read", **overrides}
    by = Caller(args.pop("actor"))
    with Session(runtime.engine) as s, pytest.raises(audit_errors.InvalidAuditEvent):
        audit_record.record(session=s, by=by, **args)


@pytest.mark.parametrize(
    "details",
    [
        {"contact": "erika@example.de"},
        {"phone": "+49 30 12345678"},
        {"phone": "030123456789"},
        {"iban_like": "DE89370400440532013000"},
        {"number": 4930123456},
        {"list": ["ok", "x@y.z"]},
        {"outer": {"inner": "x@y.z"}},
    ],
)
def test_record_refuses_pii_looking_details(runtime, details):
    with Session(runtime.engine) as s, pytest.raises(audit_errors.AuditPiiRefused):
        audit_record.record(session=s, by=Caller("cli"), action="customer.lookup", details=details)


def test_uuid_and_small_numbers_are_not_pii(runtime):
    with Session(runtime.engine) as s:
        audit_record.record(
            session=s,
            by=Caller("system"),
            action="consent.recorded",
            details={"event_id": str(uuid.UUID(int=12345678901234567890)), "count": 100000},
        )
        s.commit()
    assert _count(runtime) == 1


def test_database_refuses_update_and_delete(runtime):
    with Session(runtime.engine) as s:
        audit_record.record(session=s, by=Caller("cli"), action="client.created")
        s.commit()
    for stmt in (
        update(AuditEvent).values(action="data.read"),
        update(AuditEvent).values(seq=1, hash=b"x" * 32, action="data.read"),
        delete(AuditEvent),
    ):
        with Session(runtime.engine) as s:
            with pytest.raises(DatabaseError, match="append-only"):
                s.execute(stmt)
            s.rollback()
    if runtime.engine.dialect.name == "postgresql":
        with Session(runtime.engine) as s, pytest.raises(DatabaseError, match="append-only"):
            s.execute(text("TRUNCATE audit_event"))
    assert _count(runtime) == 1


def test_record_many_keeps_every_field_and_chains_with_record(runtime):
    from tests.audit.helpers import seal, verify

    now = utcnow().replace(microsecond=0)
    a, b = uuid.uuid4(), uuid.uuid4()
    events = [
        {"actor": "client:x", "action": "data.export", "customer_id": a, "purpose": "analytics"},
        {
            "actor": "client:x",
            "action": "data.export",
            "customer_id": str(b),
            "purpose": "analytics",
        },
        {
            "actor": "client:y",
            "action": "data.read",
            "outcome": "denied",
            "reason": "no_consent",
            "attributes": ["email"],
            "request_id": "rq1",
            "details": {"note": "tab\there"},
            "now": now,
        },
    ]
    with Session(runtime.engine) as s:
        audit_record.record(session=s, by=Caller("cli"), action="client.created")
        audit_record.record_many(session=s, events=events)
        s.commit()
    with Session(runtime.engine) as s:
        rows = s.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    assert [r.customer_id for r in rows] == [None, a, b, None]
    assert [r.actor_id for r in rows] == [None, "x", "x", "y"]
    last = rows[-1]
    assert (last.outcome, last.reason, last.attributes, last.request_id) == (
        "denied",
        "no_consent",
        "email",
        "rq1",
    )
    assert last.occurred_at == now and last.details == '{"note":"tab\\there"}'
    assert rows[1].occurred_at == rows[2].occurred_at != now
    seal(runtime)
    assert verify(runtime).model_dump() == {"ok": True, "checked": 4, "first_invalid_seq": None}


def test_record_many_refuses_unknown_keys_and_bad_events(runtime):
    with Session(runtime.engine) as s:
        with pytest.raises(audit_errors.InvalidAuditEvent):
            audit_record.record_many(
                session=s, events=[{"actor": "cli", "action": "x.y", "email": "a"}]
            )
        with pytest.raises(audit_errors.InvalidAuditEvent):
            audit_record.record_many(
                session=s, events=[{"actor": "cli", "action": "x.y", "customer_id": "nope"}]
            )
        with pytest.raises(audit_errors.AuditPiiRefused):
            audit_record.record_many(
                session=s, events=[{"actor": "cli", "action": "x.y", "details": {"e": "a@b.de"}}]
            )
