"""SQL on the customer tables: the customer row lock every writer takes, the DEK rewrap."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import bindparam, select
from sqlmodel import Session

from vault.customers.models import Customer, CustomerStatus
from vault.errors import CustomerErased, CustomerNotFound

_CUSTOMER = Customer.__table__
# prebuilt: the consent hot path takes this lock on every write
_LOCK_CUSTOMER = (
    select(_CUSTOMER.c.status).where(_CUSTOMER.c.id == bindparam("cid")).with_for_update()
)


def lock_customer(session: Session, customer_id: UUID) -> None:
    """Check the customer for writing (404 unknown, 410 erased) and, on PostgreSQL, hold its
    row lock until commit (SQLite's ``BEGIN IMMEDIATE`` already serialises writers).

    Every writer of a customer's rows takes this lock *first* (consent writes, erasure,
    rectification, the rights of vault.dsr), so writers of one customer queue instead of
    deadlocking, and a writer that waited sees the committed outcome of the one before (e.g. an
    erasure: 410)."""
    status = session.connection().execute(_LOCK_CUSTOMER, {"cid": customer_id}).scalar()
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
