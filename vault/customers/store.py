"""SQL on the customer tables: the customer row lock every writer takes, the DEK rewrap, the
crypto-shredding of erasure and the retention deletes (vault.dsr calls these; it names no
customer table itself)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlmodel import Session

from vault.customers.models import BlindIndex, Customer, CustomerStatus, CustomerValue
from vault.db import DriverSQL, db_uuid
from vault.errors import CustomerErased, CustomerNotFound

_CUSTOMER = Customer.__table__
_VALUE = CustomerValue.__table__
_INDEX = BlindIndex.__table__
# driver SQL: the consent hot path takes this lock on every write
_LOCK_CUSTOMER_SQL = DriverSQL("SELECT status FROM customer WHERE id = ?", " FOR UPDATE")


def lock_customer(session: Session, customer_id: UUID) -> None:
    """Check the customer for writing (404 unknown, 410 erased) and, on PostgreSQL, hold its
    row lock until commit (SQLite's ``BEGIN IMMEDIATE`` already serialises writers).

    Every writer of a customer's rows takes this lock *first* (consent writes, erasure,
    rectification, the rights of vault.dsr), so writers of one customer queue instead of
    deadlocking, and a writer that waited sees the committed outcome of the one before (e.g. an
    erasure: 410)."""
    conn = session.connection()
    row = _LOCK_CUSTOMER_SQL.run(conn, (db_uuid(customer_id, conn.dialect.name == "sqlite"),))
    found = row.fetchone()
    status = None if found is None else found[0]
    if status is None:
        raise CustomerNotFound()
    if status == CustomerStatus.ERASED:
        raise CustomerErased()


_REWRAP_SQL = {
    True: "UPDATE customer SET dek_wrapped = ?, kek_id = ? WHERE id = ? AND kek_id = ?",
    False: "UPDATE customer SET dek_wrapped = %s, kek_id = %s WHERE id = %s AND kek_id = %s",
}


def rewrap(session: Session, rows: list[tuple[bytes, str, UUID, str]]) -> None:
    """Store re-wrapped DEKs: ``(new_wrapped, new_kek_id, customer_id, old_kek_id)`` each.

    One driver-level executemany; the old KEK id in the WHERE makes a concurrent rewrap of the
    same row harmless."""
    if not rows:
        return
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    params = [(w, k, cid.hex if sqlite else cid, old) for w, k, cid, old in rows]
    conn.exec_driver_sql(_REWRAP_SQL[sqlite], params)


def count_wrapped_under(session: Session, kek_id: str) -> int:
    """How many DEKs are still wrapped under KEK ``kek_id``."""
    return (
        session.connection()
        .execute(select(func.count()).select_from(_CUSTOMER).where(_CUSTOMER.c.kek_id == kek_id))
        .scalar_one()
    )


# --- erasure (vault.dsr.erasure) ------------------------------------------------------------


def lock_many(session: Session, ids: Sequence[UUID]) -> dict[UUID, tuple[str, bool]]:
    """``{id: (status, legal_hold)}`` of the known customers among ``ids``, their rows locked
    until commit (PostgreSQL)."""
    rows = session.connection().execute(
        select(_CUSTOMER.c.id, _CUSTOMER.c.status, _CUSTOMER.c.legal_hold)
        .where(_CUSTOMER.c.id.in_(ids))
        .with_for_update()
    )
    return {cid: (status, hold) for cid, status, hold in rows}


def shred(session: Session, ids: Sequence[UUID], actor: str, now: datetime) -> None:
    """Crypto-shred customers: the wrapped data key goes (NULL), their values and blind-index
    rows are deleted, the customer row stays as a tombstone (``erased_at``, ``erased_by``; the
    codes of a legal hold or restriction stay, their notes, sealed under the key, go).
    The caller's transaction; the rows must be locked (:func:`lock_customer`, :func:`lock_many`)."""
    conn = session.connection()
    conn.execute(
        update(_CUSTOMER)
        .where(_CUSTOMER.c.id.in_(ids))
        .values(
            dek_wrapped=None,
            kek_id=None,
            status=CustomerStatus.ERASED,
            erased_at=now,
            erased_by=actor,
            updated_at=now,
            legal_hold_note=None,
            restriction_note=None,
        )
    )
    # Every table whose rows hold a customer's data or a secret derived from it.
    for table in (_VALUE, _INDEX):
        conn.execute(delete(table).where(table.c.customer_id.in_(ids)))


# --- retention (vault.dsr.retention) ----------------------------------------------------------


def _eligible_customers():
    """Customers whose values retention may delete: active (not restricted, not erased) and not
    under a legal hold."""
    return select(_CUSTOMER.c.id).where(
        _CUSTOMER.c.status == CustomerStatus.ACTIVE, _CUSTOMER.c.legal_hold.is_(False)
    )


def expire_values(
    session: Session, attribute: str, cutoff: datetime, *, searchable: bool, limit: int
) -> tuple[int, list[UUID]]:
    """One batch of retention: delete up to ``limit`` values of ``attribute`` last written
    before ``cutoff`` (of eligible customers, in id order), with their blind-index rows when the
    attribute is ``searchable``. Returns ``(found, deleted customer ids)``: fewer found than
    ``limit`` means the last batch."""
    v = _VALUE.c
    conn = session.connection()
    ids = list(
        conn.execute(
            select(v.customer_id)
            .where(
                v.attribute == attribute,
                v.updated_at < cutoff,
                v.customer_id.in_(_eligible_customers()),
            )
            .order_by(v.customer_id)
            .limit(limit)
        ).scalars()
    )
    if not ids:
        return 0, []
    # Re-check in the DELETE: a value rectified since the SELECT is newer and stays.
    deleted = list(
        conn.execute(
            delete(_VALUE)
            .where(
                v.attribute == attribute,
                v.updated_at < cutoff,
                v.customer_id.in_(ids),
                v.customer_id.in_(_eligible_customers()),
            )
            .returning(v.customer_id)
        ).scalars()
    )
    if searchable and deleted:
        conn.execute(
            delete(_INDEX).where(_INDEX.c.attribute == attribute, _INDEX.c.customer_id.in_(deleted))
        )
    return len(ids), deleted


# --- reads ------------------------------------------------------------------------------------


def value_dates(session: Session, customer_id: UUID) -> dict[str, datetime]:
    """``{attribute: updated_at}`` of the customer's stored values (the export shows them)."""
    return dict(
        session.connection()
        .execute(
            select(_VALUE.c.attribute, _VALUE.c.updated_at).where(
                _VALUE.c.customer_id == customer_id
            )
        )
        .all()
    )


def not_erased_ids():
    """A subquery of the ids of customers not erased (other domains filter their rows by it,
    e.g. the consent expiry sweep)."""
    return select(_CUSTOMER.c.id).where(_CUSTOMER.c.status != CustomerStatus.ERASED)


def shred_inventory(session: Session, ids: Sequence[UUID]) -> dict[UUID, dict]:
    """What :func:`shred` is about to destroy, per customer, for the erasure certificate: the
    KEK that wraps the data key, the number of values and blind-index rows and the attribute
    names (never values). Customers that are not found are left out."""
    conn = session.connection()
    out: dict[UUID, dict] = {
        cid: {"kek_id": kek, "values": 0, "index_entries": 0, "attributes": []}
        for cid, kek in conn.execute(
            select(_CUSTOMER.c.id, _CUSTOMER.c.kek_id).where(_CUSTOMER.c.id.in_(ids))
        )
    }
    for cid, attribute in conn.execute(
        select(_VALUE.c.customer_id, _VALUE.c.attribute)
        .where(_VALUE.c.customer_id.in_(ids))
        .order_by(_VALUE.c.customer_id, _VALUE.c.attribute)
    ):
        out[cid]["values"] += 1
        out[cid]["attributes"].append(attribute)
    for cid, n in conn.execute(
        select(_INDEX.c.customer_id, func.count())
        .where(_INDEX.c.customer_id.in_(ids))
        .group_by(_INDEX.c.customer_id)
    ):
        out[cid]["index_entries"] = n
    return out
