"""Retention: a purge keeps the rest verifiable from a signed anchor, nothing above it."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from tests.audit.helpers import seal, verify, write
from vault.audit import purge as audit_purge
from vault.audit.models import AuditCheckpoint, AuditEvent, AuditPurge
from vault.db import utcnow


def test_purge_keeps_the_rest_verifiable_from_a_signed_anchor(runtime):
    old = utcnow() - timedelta(days=400)
    write(runtime, 10, now=old)
    seal(runtime)  # checkpoint 10
    write(runtime, 3, now=old)
    seal(runtime, checkpoint=False)  # 11-13 old but after the last checkpoint: kept
    write(runtime, 5)
    seal(runtime)  # checkpoint 18
    with Session(runtime.engine) as s:
        result = audit_purge.purge(session=s, retention_days=365)
        s.commit()
    assert (result.up_to_seq, result.deleted) == (10, 10)
    seal(runtime)
    with Session(runtime.engine) as s:
        left = s.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars().all()
        cps = s.execute(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).scalars().all()
        purges = s.execute(select(AuditPurge.up_to_seq)).scalars().all()
        purged = (
            s.execute(select(AuditEvent).where(AuditEvent.action == "audit.purged")).scalars().one()
        )
    assert left == list(range(11, 20)) and cps == [10, 18, 19] and purges == [10]
    assert purged.seq == 19 and '"up_to_seq":10' in purged.details
    assert verify(runtime).model_dump() == {"ok": True, "checked": 9, "first_invalid_seq": None}
    # A second purge with nothing old left does nothing.
    with Session(runtime.engine) as s:
        assert audit_purge.purge(session=s, retention_days=365).up_to_seq is None


def test_purge_permit_allows_nothing_above_the_anchor(runtime):
    old = utcnow() - timedelta(days=400)
    write(runtime, 4, now=old)
    seal(runtime)
    write(runtime, 2)
    seal(runtime)
    with Session(runtime.engine) as s:
        audit_purge.purge(session=s, retention_days=30)
        s.commit()
    with Session(runtime.engine) as s:
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(text("DELETE FROM audit_event WHERE seq = 5"))
        s.rollback()
        with pytest.raises(DatabaseError, match="append-only"):
            s.execute(text("DELETE FROM audit_purge"))
        s.rollback()
