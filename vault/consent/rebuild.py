"""Rebuild the ``consent_state`` projection from the ledger (``vault consent rebuild``).

The projection written live and the replay of the ledger are equal by construction
(:func:`vault.consent.rules.apply`); this proves it, and with ``fix`` restores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select, text
from sqlmodel import Session

from vault.consent import store as consent_store
from vault.consent.models import ConsentEvent, ConsentState
from vault.consent.rules import Projection, apply, as_projection
from vault.db import utcnow


@dataclass
class Difference:
    customer_id: UUID
    purpose: str
    projection: Projection | None
    ledger: Projection | None

    def describe(self) -> str:
        def show(d: Projection | None) -> str:
            if d is None:
                return "(no row)"
            granted = d.granted_at.isoformat() if d.granted_at else "-"
            return (
                f"{d.status} v{d.version} granted_at={granted} "
                f"decided_at={d.decided_at.isoformat()} event={d.event_id}"
            )

        return (
            f"{self.customer_id} {self.purpose}: projection {show(self.projection)}; "
            f"ledger {show(self.ledger)}"
        )


@dataclass
class RebuildReport:
    events: int = 0
    states: int = 0
    differences: list[Difference] = field(default_factory=list)
    fixed: bool = False


def rebuild(*, session: Session, fix: bool, now: datetime | None = None) -> RebuildReport:
    """Replay the whole ledger and compare it with ``consent_state``; with ``fix`` rewrite the
    rows that differ (insert missing, update wrong, delete rows without events).

    On PostgreSQL the projection is locked against writers for the duration (they queue), so
    the comparison sees one consistent moment; on SQLite the write transaction does that."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE consent_state IN EXCLUSIVE MODE"))
    report = RebuildReport()
    projection = {
        (row.customer_id, row.purpose): as_projection(row)
        for row in session.execute(select(ConsentState)).scalars()
    }
    report.states = len(projection)
    ledger: dict[tuple[UUID, str], Projection | None] = {}
    rows = session.execute(
        select(
            ConsentEvent.customer_id,
            ConsentEvent.purpose,
            ConsentEvent.id,
            ConsentEvent.status,
            ConsentEvent.purpose_version,
            ConsentEvent.occurred_at,
        )
        .order_by(ConsentEvent.customer_id, ConsentEvent.purpose)
        .order_by(ConsentEvent.occurred_at, ConsentEvent.seq)
        .execution_options(yield_per=5000)
    )
    for row in rows:
        report.events += 1
        key = (row.customer_id, row.purpose)
        ledger[key], _ = apply(ledger.get(key), row)
    for key in sorted(set(projection) | set(ledger), key=lambda k: (str(k[0]), k[1])):
        have, want = projection.get(key), ledger.get(key)
        if have != want:
            report.differences.append(Difference(key[0], key[1], have, want))
    if fix and report.differences:
        for diff in report.differences:
            if diff.ledger is None:
                session.execute(
                    delete(ConsentState).where(
                        ConsentState.customer_id == diff.customer_id,
                        ConsentState.purpose == diff.purpose,
                    )
                )
            else:
                consent_store.write_state(
                    session, diff.projection, diff.ledger, now, diff.customer_id, diff.purpose
                )
        session.flush()
        report.fixed = True
    return report
