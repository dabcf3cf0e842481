"""Retention of the audit log: delete old events up to a signed checkpoint that anchors the rest.

**Retention** (:func:`purge`, ``vault audit purge``): events older than
``VAULT_AUDIT_RETENTION_DAYS`` are deleted only up to a signed checkpoint ``A``. The purge writes
a permit row into ``audit_purge`` (the delete trigger allows deleting ``seq <= up_to_seq`` and
nothing else), deletes, and records a chained ``audit.purged`` event naming ``A``. Verification
then starts from checkpoint ``A``: its signature vouches for the hash the remaining chain
continues from, and the ``audit.purged`` event inside the verified chain must name ``A``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, text
from sqlmodel import Session

from vault.audit.actions import AuditAction
from vault.audit.models import AuditCheckpoint, AuditEvent, AuditPurge
from vault.audit.record import record
from vault.db import utcnow
from vault.provenance import CLI, Caller


@dataclass(frozen=True)
class PurgeResult:
    up_to_seq: int | None
    deleted: int


def purge(
    *, session: Session, now: datetime | None = None, retention_days: int, by: Caller = CLI
) -> PurgeResult:
    """Delete chained events older than ``retention_days``, up to the newest signed checkpoint
    that precedes every younger event; that checkpoint anchors what remains. Seal with a
    checkpoint first (``vault audit purge`` does)."""
    now = now or utcnow()
    cutoff = now - timedelta(days=retention_days)
    young = session.execute(
        select(func.min(AuditEvent.seq)).where(
            AuditEvent.seq.is_not(None), AuditEvent.occurred_at >= cutoff
        )
    ).scalar()
    if young is None:
        young = (session.execute(select(func.max(AuditEvent.seq))).scalar() or 0) + 1
    anchor = session.execute(
        select(func.max(AuditCheckpoint.seq)).where(AuditCheckpoint.seq < young)
    ).scalar()
    done = session.execute(select(func.max(AuditPurge.up_to_seq))).scalar() or 0
    if anchor is None or anchor <= done:
        return PurgeResult(up_to_seq=None, deleted=0)
    count = session.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.seq <= anchor)
    ).scalar_one()
    # The permit first: the delete triggers allow exactly seq <= up_to_seq.
    session.execute(
        insert(AuditPurge.__table__),  # type: ignore[attr-defined]
        [{"up_to_seq": anchor, "purged_at": now, "deleted": count}],
    )
    session.execute(text("DELETE FROM audit_event WHERE seq <= :a"), {"a": anchor})
    session.execute(text("DELETE FROM audit_checkpoint WHERE seq < :a"), {"a": anchor})
    record(
        session=session,
        by=by,
        action=AuditAction.AUDIT_PURGED,
        details={"up_to_seq": anchor, "deleted": count, "retention_days": retention_days},
        now=now,
    )
    return PurgeResult(up_to_seq=anchor, deleted=count)
