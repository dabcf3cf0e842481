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

from vault.db import driver_execute
from vault.preferences.store import ContactFilter

_CUSTOMER = (
    "SELECT c.status, c.objections, c.dek_wrapped, c.kek_id, "
    "s.status, s.version, s.granted_at, s.decided_at "
    "FROM customer c LEFT JOIN consent_state s ON s.customer_id = c.id AND s.purpose = {p} "
    "WHERE c.id = {p}"
)
# The customer's status again, in the same statement as its values: on PostgreSQL each statement
# has its own snapshot, so an erasure or restriction committed after the first read shows here.
_VALUES = (
    "SELECT c.status, v.attribute, v.ciphertext FROM customer c "
    "LEFT JOIN customer_value v ON v.customer_id = c.id WHERE c.id = {p}"
)
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


def _customer_row(row: tuple) -> CustomerRow:
    """(status, objections, dek_wrapped, kek_id[, state status, version, granted_at,
    decided_at]) as selected by the queries below."""
    status, objections, wrapped, kek_id = row[:4]
    state = None
    if len(row) > 4 and row[4] is not None:
        state = StateRow(row[4], row[5], _time(row[6]), _time(row[7]))
    return CustomerRow(
        status,
        frozenset((objections or "").split()),
        bytes(wrapped) if wrapped is not None else None,
        kek_id,
        state,
    )


def _id(conn: Connection, customer_id: UUID) -> UUID | str:
    return customer_id.hex if conn.dialect.name == "sqlite" else customer_id


def customer_for_purpose(conn: Connection, customer_id: UUID, purpose: str) -> CustomerRow | None:
    """The customer's status, objections, wrapped key and consent state for one purpose."""
    row = driver_execute(
        conn, _SQL[conn.dialect.name]["customer"], (purpose, _id(conn, customer_id))
    ).fetchone()
    if row is None:
        return None
    return _customer_row(row)


def ciphertexts(conn: Connection, customer_id: UUID) -> tuple[str | None, dict[str, bytes]]:
    """The customer's status as of this statement and its ciphertexts."""
    rows = driver_execute(
        conn, _SQL[conn.dialect.name]["values"], (_id(conn, customer_id),)
    ).fetchall()
    status = rows[0][0] if rows else None
    return status, {attr: bytes(blob) for _, attr, blob in rows if attr is not None}


def _param(conn: Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


def _db_time(conn: Connection, value: datetime) -> datetime | str:
    if conn.dialect.name == "sqlite":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


@dataclass(frozen=True, slots=True)
class AudienceFilter:
    """The SQL half of the decision for one purpose (the decision function is the other)."""

    purpose: str
    consent: bool
    counting: tuple[str, ...] = ()
    min_version: int | None = None
    granted_after: datetime | None = None
    exclude_objection: str | None = None
    # the customer's own filters for this contact (vault.preferences), None: not a contact
    contact: ContactFilter | None = None


def audience_batch(
    conn: Connection, f: AudienceFilter, after: UUID | None, limit: int
) -> list[tuple[UUID, CustomerRow]]:
    """One keyset page of candidate customers, in id order."""
    p = _param(conn)
    params: list = []
    cols = "c.id, c.status, c.objections, c.dek_wrapped, c.kek_id"
    if f.consent:
        cols += ", s.status, s.version, s.granted_at, s.decided_at"
        # SQLite would start from the (purpose, status) index and sort every match for each
        # page (2.3 s a page at a million customers); CROSS JOIN makes it walk customers in id
        # order and stop at the page size (12 ms). PostgreSQL plans this well by itself.
        join_kw = "CROSS JOIN" if conn.dialect.name == "sqlite" else "JOIN"
        join = (
            f" {join_kw} consent_state s ON s.customer_id = c.id AND s.purpose = {p}"
            f" AND s.status IN ({', '.join([p] * len(f.counting))})"
        )
        params += [f.purpose, *f.counting]
        if f.min_version is not None:
            join += f" AND s.version >= {p}"
            params.append(f.min_version)
        if f.granted_after is not None:
            join += f" AND s.granted_at >= {p}"
            params.append(_db_time(conn, f.granted_after))
    else:
        join = ""
    where = "c.status = 'active'"
    if f.exclude_objection:
        where += f" AND c.objections NOT LIKE {p}"
        params.append(f"%{f.exclude_objection}%")
    if f.contact is not None:
        contact_sql, contact_params = f.contact.sql(conn.dialect.name, p)
        where += contact_sql
        params += contact_params
    if after is not None:
        where += f" AND c.id > {p}"
        params.append(_id(conn, after))
    sql = f"SELECT {cols} FROM customer c{join} WHERE {where} ORDER BY c.id LIMIT {int(limit)}"  # noqa: S608
    sqlite = conn.dialect.name == "sqlite"
    out = []
    for row in driver_execute(conn, sql, tuple(params)).fetchall():
        out.append((UUID(hex=row[0]) if sqlite else row[0], _customer_row(row[1:])))
    return out


def ciphertexts_of(
    conn: Connection, customer_ids: list[UUID], names: tuple[str, ...]
) -> tuple[dict[UUID, str], dict[UUID, dict[str, bytes]]]:
    """The statuses of many customers as of this statement, and their named values."""
    if not customer_ids or not names:
        return {}, {}
    p = _param(conn)
    sqlite = conn.dialect.name == "sqlite"
    sql = (
        "SELECT c.id, c.status, v.attribute, v.ciphertext FROM customer c "  # noqa: S608
        "LEFT JOIN customer_value v ON v.customer_id = c.id "
        f"AND v.attribute IN ({', '.join([p] * len(names))}) "
        f"WHERE c.id IN ({', '.join([p] * len(customer_ids))})"
    )
    params = list(names) + [c.hex if sqlite else c for c in customer_ids]
    statuses: dict[UUID, str] = {}
    out: dict[UUID, dict[str, bytes]] = {}
    for cid, status, attribute, blob in driver_execute(conn, sql, tuple(params)).fetchall():
        key = UUID(hex=cid) if sqlite else cid
        statuses[key] = status
        if attribute is not None:
            out.setdefault(key, {})[attribute] = bytes(blob)
    return statuses, out
