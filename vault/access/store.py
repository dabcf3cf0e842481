"""The read path's queries, as plain driver SQL.

A gated read is the hottest path of the vault; through the ORM its three lookups cost about a
millisecond (profile in BENCHMARKS.md). These statements fetch the same rows with the driver's
own parameter style, in the request's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import Connection

_CUSTOMER = (
    "SELECT c.status, c.objections, c.dek_wrapped, c.kek_id, "
    "s.status, s.version, s.granted_at, s.decided_at "
    "FROM customer c LEFT JOIN consent_state s ON s.customer_id = c.id AND s.purpose = {p} "
    "WHERE c.id = {p}"
)
_VALUES = "SELECT attribute, ciphertext FROM customer_value WHERE customer_id = {p}"
_SQL = {
    "sqlite": {k: v.format(p="?") for k, v in {"customer": _CUSTOMER, "values": _VALUES}.items()},
    "postgresql": {
        k: v.format(p="%s") for k, v in {"customer": _CUSTOMER, "values": _VALUES}.items()
    },
}


@dataclass(frozen=True, slots=True)
class StateRow:
    status: str
    version: int
    granted_at: datetime | None
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerRow:
    status: str
    objections: frozenset[str]
    dek_wrapped: bytes | None
    kek_id: str | None
    state: StateRow | None


def _time(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite keeps naive UTC text
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _id(conn: Connection, customer_id: UUID) -> UUID | str:
    return customer_id.hex if conn.dialect.name == "sqlite" else customer_id


def customer_for_purpose(conn: Connection, customer_id: UUID, purpose: str) -> CustomerRow | None:
    """The customer's status, objections, wrapped key and consent state for one purpose."""
    row = conn.exec_driver_sql(
        _SQL[conn.dialect.name]["customer"], (purpose, _id(conn, customer_id))
    ).first()
    if row is None:
        return None
    status, objections, wrapped, kek_id, s_status, s_version, s_granted, s_decided = row
    state = None
    if s_status is not None:
        state = StateRow(s_status, s_version, _time(s_granted), _time(s_decided))
    return CustomerRow(
        status, frozenset((objections or "").split()), wrapped and bytes(wrapped), kek_id, state
    )


def ciphertexts(conn: Connection, customer_id: UUID) -> dict[str, bytes]:
    return {
        attribute: bytes(blob)
        for attribute, blob in conn.exec_driver_sql(
            _SQL[conn.dialect.name]["values"], (_id(conn, customer_id),)
        )
    }
