"""Erasure (GDPR Art. 17) by crypto-shredding.

:func:`erase` / :func:`erase_many`: the wrapped data key is set to NULL and values, blind-index
rows, confirmation tokens and idempotency answers are deleted in the caller's one transaction;
the customer row stays as a tombstone (``erased_at``, ``erased_by``); the consent ledger, its
projection and the audit log stay (ids only, no clear PII). A legal hold (Art. 17(3)) refuses
with 409 (:func:`record_refused_erasure` audits the refusal). Each erasure is audited as
``dsr.erasure``, emits ``customer.erased`` and closes (or records) the erasure request.

Once the erasure has committed, :func:`finish_on_disk` removes the deleted bytes from the
database's files (:func:`vault.db.scrub_deleted`: SQLite truncates its WAL; PostgreSQL vacuums
the tables after a batch) before the erasure answers; if a reader keeps SQLite from finishing,
the erasure answers :class:`~vault.dsr.errors.ErasureIncomplete` (503) instead of success.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from uuid import UUID, uuid4

from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.consent import store as consent_store
from vault.customers import service as customers_service
from vault.customers import store as customers_store
from vault.customers.schemas import Customer, CustomerStatus
from vault.db import after_commit, scrub_deleted, utcnow
from vault.dsr.errors import ErasureIncomplete, LegalHold
from vault.dsr.models import DataSubjectRequest, RequestKind, RequestStatus
from vault.dsr.requests import due_at, record_audit
from vault.events import outbox as events_outbox
from vault.events.outbox import EventType
from vault.provenance import Caller

_CHUNK = 500  # ids per IN (...) list
_REQUEST = DataSubjectRequest.__table__
# The tables an erasure deletes rows from (or nulls the wrapped key in): PostgreSQL vacuums them
# after a batch (erase_many), so the erased rows' dead tuples do not wait for autovacuum.
ERASED_TABLES = (
    "customer",
    "customer_value",
    "blind_index",
    "consent_confirmation",
    "consent_idempotency",
)


@dataclass
class EraseManyResult:
    erased: list[UUID] = field(default_factory=list)
    not_found: list[UUID] = field(default_factory=list)
    already_erased: list[UUID] = field(default_factory=list)
    legal_hold: list[UUID] = field(default_factory=list)


def _chunks(ids: Sequence[UUID], size: int = _CHUNK) -> Iterable[list[UUID]]:
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])


def _shred(session: Session, ids: list[UUID], actor: str, now: datetime) -> None:
    """One transaction (the caller's): destroy the keys, delete the data, leave tombstones.
    Each domain deletes what it holds of the customers (its ``store.shred``)."""
    customers_store.shred(session, ids, actor, now)
    consent_store.shred(session, ids)
    conn = session.connection()
    # Close every open erasure request of these customers; record one for the others.
    open_for = set(
        conn.execute(
            select(_REQUEST.c.customer_id).where(
                _REQUEST.c.customer_id.in_(ids),
                _REQUEST.c.kind == RequestKind.ERASURE,
                _REQUEST.c.status == RequestStatus.OPEN,
            )
        ).scalars()
    )
    if open_for:
        conn.execute(
            update(_REQUEST)
            .where(
                _REQUEST.c.customer_id.in_(list(open_for)),
                _REQUEST.c.kind == RequestKind.ERASURE,
                _REQUEST.c.status == RequestStatus.OPEN,
            )
            .values(status=RequestStatus.COMPLETED, handled_by=actor, closed_at=now)
        )
    due = due_at(now)
    new = [
        {
            "id": uuid4(),
            "customer_id": cid,
            "kind": RequestKind.ERASURE,
            "status": RequestStatus.COMPLETED,
            "received_at": now,
            "due_at": due,
            "extension_months": 0,
            "created_by": actor,
            "handled_by": actor,
            "closed_at": now,
            "created_at": now,
        }
        for cid in ids
        if cid not in open_for
    ]
    if new:
        conn.execute(insert(_REQUEST), new)


def finish_on_disk(engine: Engine, vacuum: Sequence[str] = ()) -> None:
    """After a committed erasure: remove what it deleted from the database's files
    (:func:`vault.db.scrub_deleted`), or raise :class:`ErasureIncomplete` (the erasure stays
    committed; the next checkpoint finishes the cleanup)."""
    if not scrub_deleted(engine, vacuum=vacuum):
        raise ErasureIncomplete()


def _finish_after_commit(session: Session, vacuum: Sequence[str] = ()) -> None:
    after_commit(session, partial(finish_on_disk, session.get_bind(), vacuum))


def _emit_erased(session: Session, ids: Sequence[UUID], now: datetime) -> None:
    for cid in ids:
        events_outbox.emit(
            session=session,
            type=EventType.CUSTOMER_ERASED,
            customer_id=cid,
            data={"erased_at": now.isoformat()},
            now=now,
        )


def erase(
    *,
    session: Session,
    customer_id: UUID,
    by: Caller,
    now: datetime | None = None,
) -> Customer:
    """Erase one customer (crypto-shredding). 404 unknown, 410 already erased, 409 under a
    legal hold (``reason`` in the error body): an audited refusal, so every door that erases
    leaves the same evidence of it. Returns the tombstone."""
    now = now or utcnow()
    customer = customers_service.lock_customer(session, customer_id)
    if customer.legal_hold:
        raise LegalHold(
            "Erasure refused: the customer's data is under a legal hold (GDPR Art. 17(3)).",
            reason=customer.legal_hold_reason,
        ).audited(
            partial(
                _record_refused_erasure,
                customer_id=customer.id,
                by=by,
                now=now,
            )
        )
    names = customers_service.stored_attribute_names(session, customer.id)
    _shred(session, [customer.id], by.actor, now)
    _emit_erased(session, [customer.id], now)
    record_audit(
        session,
        by,
        AuditAction.DSR_ERASURE,
        customer.id,
        now,
        attributes=names,
    )
    _finish_after_commit(session)
    session.expire(customer)
    session.refresh(customer)
    return customer


def _record_refused_erasure(
    session: Session, *, customer_id: UUID, now: datetime, by: Caller
) -> None:
    """The audit row of an erasure refused because of a legal hold."""
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.DSR_ERASURE,
        outcome="denied",
        customer_id=customer_id,
        reason="legal_hold",
        now=now,
    )


def erase_many(
    *,
    session: Session,
    customer_ids: Sequence[UUID],
    by: Caller,
    now: datetime | None = None,
) -> EraseManyResult:
    """Erase many customers in the caller's one transaction (batch erasure, e.g. accounts
    closed long ago). Unknown, already erased and legally held customers are skipped and
    reported, not raised. Statements work on chunks of 500 ids."""
    now = now or utcnow()
    result = EraseManyResult()
    wanted = list(dict.fromkeys(customer_ids))
    for chunk in _chunks(wanted):
        rows = customers_store.lock_many(session, chunk)
        ids: list[UUID] = []
        for cid in chunk:
            found = rows.get(cid)
            if found is None:
                result.not_found.append(cid)
            elif found[0] == CustomerStatus.ERASED:
                result.already_erased.append(cid)
            elif found[1]:
                result.legal_hold.append(cid)
            else:
                ids.append(cid)
        if not ids:
            continue
        _shred(session, ids, by.actor, now)
        _emit_erased(session, ids, now)
        audit_record.record_many(
            session=session,
            events=[
                {
                    "actor": by.actor,
                    "action": AuditAction.DSR_ERASURE,
                    "customer_id": cid,
                    "request_id": by.request_id,
                    "now": now,
                }
                for cid in ids
            ],
        )
        result.erased.extend(ids)
    if result.erased:
        _finish_after_commit(session, ERASED_TABLES)
    return result
