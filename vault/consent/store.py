"""SQL of the consent ledger: prebuilt Core statements, the rows they write, the one row builder,
the reads other domains use (effective states, the ledger) and the erasure and retention deletes.

The hot path runs these prebuilt Core statements on the session's connection: no ORM objects,
no statement construction per request (SQLAlchemy caches their compilation). A
``consent_event`` row (with its notice hash and signed receipt) is built only by
:func:`event_row` and a ``consent_state`` row only by :func:`state_row`, for the live write and
the bulk import alike, so a new column is added in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
from sqlalchemy import Row, and_, bindparam, delete, func, insert, select, update
from sqlmodel import Session

from vault.consent.models import (
    ConsentConfirmation,
    ConsentEvent,
    ConsentIdempotency,
    ConsentState,
)
from vault.consent.receipts import notice_hash, sign_receipt
from vault.consent.rules import EffectiveConsent, Projection, effective, replay
from vault.crypto.signing import Signer
from vault.db import DriverSQL, db_time, db_uuid, py_time
from vault.policy import Policy, Purpose


@dataclass(frozen=True)
class LedgerEvent:
    """A recorded ``consent_event`` row (what the write path returns; no ORM instance)."""

    seq: int
    id: UUID
    customer_id: UUID
    purpose: str
    purpose_version: int
    status: str
    occurred_at: datetime
    recorded_at: datetime
    channel: str
    method: str
    actor: str
    recorded_by: str
    language: str
    notice_hash: str
    evidence: dict[str, Any]
    receipt: str


@dataclass(frozen=True)
class StateRecord:
    """A ``consent_state`` row as the write left it (same attribute names as ConsentState)."""

    customer_id: UUID
    purpose: str
    status: str
    version: int
    granted_at: datetime | None
    decided_at: datetime
    event_id: UUID
    updated_at: datetime


_EVENT = ConsentEvent.__table__
_STATE = ConsentState.__table__
_READ_STATE = select(_STATE).where(
    _STATE.c.customer_id == bindparam("cid"), _STATE.c.purpose == bindparam("pid")
)
_INSERT_EVENT = insert(_EVENT).returning(_EVENT.c.seq)
_INSERT_EVENTS = insert(_EVENT)
_INSERT_STATE = insert(_STATE)
_UPDATE_STATE = update(_STATE).where(
    _STATE.c.customer_id == bindparam("key_customer_id"),
    _STATE.c.purpose == bindparam("key_purpose"),
)
# driver SQL of the hot write (every consent write runs these; see vault.db.DriverSQL)
_EVENT_COLUMNS = (
    "id, customer_id, purpose, purpose_version, status, occurred_at, recorded_at, channel, "
    "method, actor, recorded_by, language, notice_hash, evidence, receipt"
)
_INSERT_EVENT_SQL = DriverSQL(
    f"INSERT INTO consent_event ({_EVENT_COLUMNS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?j, ?) RETURNING seq"
)
_READ_STATE_SQL = DriverSQL(
    "SELECT status, version, granted_at, decided_at, event_id, updated_at FROM consent_state "
    "WHERE customer_id = ? AND purpose = ?"
)
_INSERT_STATE_SQL = DriverSQL(
    "INSERT INTO consent_state (status, version, granted_at, decided_at, event_id, updated_at, "
    "customer_id, purpose) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_STATE_SQL = DriverSQL(
    "UPDATE consent_state SET status = ?, version = ?, granted_at = ?, decided_at = ?, "
    "event_id = ?, updated_at = ? WHERE customer_id = ? AND purpose = ?"
)
_CONFIRMATION = ConsentConfirmation.__table__
_INSERT_CONFIRMATION = insert(_CONFIRMATION)
_IDEMPOTENCY = ConsentIdempotency.__table__
_READ_IDEMPOTENCY = select(
    _IDEMPOTENCY.c.request_hash, _IDEMPOTENCY.c.response, _IDEMPOTENCY.c.token_ciphertext
).where(_IDEMPOTENCY.c.client == bindparam("client"), _IDEMPOTENCY.c.key == bindparam("key"))
_INSERT_IDEMPOTENCY = insert(_IDEMPOTENCY)


# --- consent_event ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Statement:
    """What one consent statement says, as a door (API, page, import, confirmation) hands it
    over: every column of its ledger event that the vault does not add itself."""

    customer_id: UUID
    purpose: Purpose
    version: int
    status: str
    channel: str
    method: str
    actor: str  # who spoke: "customer", "staff:<id>" (the caller is ``recorded_by``)
    language: str
    occurred_at: datetime
    evidence: dict[str, Any]


def event_row(
    *,
    signer: Signer,
    issuer: str,
    policy: Policy,
    statement: Statement,
    recorded_by: str,
    now: datetime,
) -> dict[str, Any]:
    """The column values of a new ``consent_event`` (all but ``seq``), receipt signed."""
    st = statement
    values = {
        "id": uuid4(),
        "customer_id": st.customer_id,
        "purpose": st.purpose.id,
        "purpose_version": st.version,
        "status": st.status,
        "occurred_at": st.occurred_at,
        "recorded_at": now,
        "channel": st.channel,
        "method": st.method,
        "actor": st.actor,
        "recorded_by": recorded_by,
        "language": st.language,
        "notice_hash": notice_hash(st.purpose, st.language),
        "evidence": st.evidence,
    }
    values["receipt"] = sign_receipt(
        signer=signer, event=values, policy=policy, purpose=st.purpose, issuer=issuer
    )
    return values


def insert_event(session: Session, row: dict[str, Any]) -> LedgerEvent:
    """Insert one :func:`event_row`; the recorded event with its ``seq`` (driver SQL: this
    runs on every consent write)."""
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    params = (
        db_uuid(row["id"], sqlite),
        db_uuid(row["customer_id"], sqlite),
        row["purpose"],
        row["purpose_version"],
        row["status"],
        db_time(row["occurred_at"], sqlite),
        db_time(row["recorded_at"], sqlite),
        row["channel"],
        row["method"],
        row["actor"],
        row["recorded_by"],
        row["language"],
        row["notice_hash"],
        orjson.dumps(row["evidence"]).decode(),
        row["receipt"],
    )
    seq = _INSERT_EVENT_SQL.run(conn, params).fetchone()[0]
    return LedgerEvent(seq=seq, **row)


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert many :func:`event_row` rows with one executemany."""
    if rows:
        session.connection().execute(_INSERT_EVENTS, rows)


# --- consent_state ------------------------------------------------------------------------


def _values(projection: Projection) -> dict[str, Any]:
    return {
        "status": projection.status,
        "version": projection.version,
        "granted_at": projection.granted_at,
        "decided_at": projection.decided_at,
        "event_id": projection.event_id,
    }


def state_row(
    customer_id: UUID, purpose: str, projection: Projection, now: datetime
) -> dict[str, Any]:
    """The column values of a ``consent_state`` row holding ``projection``."""
    return {
        "customer_id": customer_id,
        "purpose": purpose,
        "updated_at": now,
        **_values(projection),
    }


def read_state(session: Session, customer_id: UUID, purpose: str) -> StateRecord | None:
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    row = _READ_STATE_SQL.run(conn, (db_uuid(customer_id, sqlite), purpose)).fetchone()
    if row is None:
        return None
    status, version, granted_at, decided_at, event_id, updated_at = row
    return StateRecord(
        customer_id=customer_id,
        purpose=purpose,
        status=status,
        version=version,
        granted_at=py_time(granted_at),
        decided_at=py_time(decided_at),
        event_id=UUID(event_id) if isinstance(event_id, str) else event_id,
        updated_at=py_time(updated_at),
    )


def event_channel(session: Session, event_id: UUID) -> str | None:
    """The channel of one ledger event (e.g. the decision a state row points at)."""
    return (
        session.connection()
        .execute(select(_EVENT.c.channel).where(_EVENT.c.id == event_id))
        .scalar_one_or_none()
    )


def event_origin(session: Session, event_id: UUID) -> tuple[str, str, dict[str, Any]] | None:
    """``(channel, recorded_by, evidence)`` of one ledger event: who wrote it, through which
    door, and how (the GPC rule asks whether a decision was the customer's own)."""
    row = (
        session.connection()
        .execute(
            select(_EVENT.c.channel, _EVENT.c.recorded_by, _EVENT.c.evidence).where(
                _EVENT.c.id == event_id
            )
        )
        .first()
    )
    return None if row is None else (row[0], row[1], dict(row[2] or {}))


def write_state(
    session: Session,
    existing: StateRecord | Projection | None,
    projection: Projection,
    now: datetime,
    customer_id: UUID,
    purpose: str,
) -> StateRecord:
    """Insert (no ``existing`` row) or update the state row of (customer, purpose)."""
    values = _values(projection)
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    params = (
        values["status"],
        values["version"],
        db_time(values["granted_at"], sqlite),
        db_time(values["decided_at"], sqlite),
        db_uuid(values["event_id"], sqlite),
        db_time(now, sqlite),
        db_uuid(customer_id, sqlite),
        purpose,
    )
    (_INSERT_STATE_SQL if existing is None else _UPDATE_STATE_SQL).run(conn, params)
    return StateRecord(customer_id=customer_id, purpose=purpose, updated_at=now, **values)


class _RowView:
    """Attribute access over an :func:`event_row` dict, for :func:`vault.consent.rules.replay`."""

    __slots__ = ("_e",)

    def __init__(self, e: dict[str, Any]):
        self._e = e

    def __getattr__(self, name: str) -> Any:
        return self._e[name]


def state_rows(events: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The ``consent_state`` rows that replaying fresh :func:`event_row` rows gives, one per
    (customer, purpose); for customers without a projection yet (the bulk import). Events of
    one purpose decide in ``occurred_at`` order, ties in the given (insertion) order."""
    by_key: dict[tuple[UUID, str], list[dict[str, Any]]] = {}
    for event in events:
        by_key.setdefault((event["customer_id"], event["purpose"]), []).append(event)
    rows = []
    for (customer_id, purpose), evs in by_key.items():
        evs.sort(key=lambda e: e["occurred_at"])
        projection = replay(_RowView(e) for e in evs)
        if projection is not None:
            rows.append(state_row(customer_id, purpose, projection, now))
    return rows


def insert_states(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert many :func:`state_row` rows with one executemany."""
    if rows:
        session.connection().execute(_INSERT_STATE, rows)


# --- reads ----------------------------------------------------------------------------------


def consent_purposes(policy: Policy, purposes: Iterable[str] | None = None) -> list[Purpose]:
    ids = policy.purposes if purposes is None else purposes
    out = []
    for pid in ids:
        purpose = policy.purposes.get(pid)
        if purpose is not None and purpose.needs_consent:
            out.append(purpose)
    return out


def effective_states(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    now: datetime,
    purposes: Iterable[str] | None = None,
) -> dict[str, EffectiveConsent]:
    """The effective consent of one customer for every consent-based purpose (or ``purposes``),
    read from the projection. Purposes never decided are ``none``."""
    wanted = consent_purposes(policy, purposes)
    stmt = select(ConsentState).where(ConsentState.customer_id == customer_id)
    if purposes is not None:
        stmt = stmt.where(ConsentState.purpose.in_([p.id for p in wanted]))
    rows = {s.purpose: s for s in session.execute(stmt).scalars()}
    return {p.id: effective(rows.get(p.id), p, now) for p in wanted}


def events(
    session: Session, customer_id: UUID, *, purpose: str | None = None, limit: int = 1000
) -> list[ConsentEvent]:
    """The customer's ledger in decision order (of one ``purpose``), at most ``limit`` events."""
    stmt = select(ConsentEvent).where(ConsentEvent.customer_id == customer_id)
    if purpose is not None:
        stmt = stmt.where(ConsentEvent.purpose == purpose)
    stmt = stmt.order_by(ConsentEvent.occurred_at, ConsentEvent.seq).limit(limit)
    return list(session.execute(stmt).scalars())


# --- double opt-in tokens and idempotency keys ----------------------------------------------


def insert_confirmation(session: Session, row: dict[str, Any]) -> None:
    session.connection().execute(_INSERT_CONFIRMATION, row)


def read_idempotency(session: Session, client: str, key: str) -> Row[Any] | None:
    """``(request_hash, response, token_ciphertext)`` of the first answer to ``key``."""
    return session.connection().execute(_READ_IDEMPOTENCY, {"client": client, "key": key}).first()


def insert_idempotency(session: Session, row: dict[str, Any]) -> None:
    session.connection().execute(_INSERT_IDEMPOTENCY, row)


# --- erasure and retention (vault.dsr) -----------------------------------------------------


def shred(session: Session, ids: Sequence[UUID]) -> None:
    """Erasure: delete the customers' working copies that hold a secret derived from their
    data (confirmation tokens, idempotent answers). The ledger and its projection stay."""
    conn = session.connection()
    for table in (_CONFIRMATION, _IDEMPOTENCY):
        conn.execute(delete(table).where(table.c.customer_id.in_(ids)))


def purge_confirmations(session: Session, now: datetime, limit: int) -> tuple[int, int]:
    """One retention batch of working copies: up to ``limit`` double opt-in confirmation rows
    whose token expired before ``now`` (the ``confirmed`` event in the ledger is the proof).
    Returns ``(found, deleted)``: fewer found than ``limit`` means the last batch."""
    conn = session.connection()
    condition = _CONFIRMATION.c.expires_at < now
    key = _CONFIRMATION.c.token_hash
    keys = list(conn.execute(select(key).where(condition).limit(limit)).scalars())
    if not keys:
        return 0, 0
    deleted = conn.execute(delete(_CONFIRMATION).where(and_(key.in_(keys), condition)))
    return len(keys), deleted.rowcount or 0


def purge_idempotency(session: Session, before: datetime, limit: int) -> tuple[int, int]:
    """One retention batch of working copies: up to ``limit`` ``Idempotency-Key`` answers
    created before ``before``, pair by pair (composite key ``(client, key)``; ``created_at`` is
    indexed). Returns ``(found, deleted)`` like :func:`purge_confirmations`."""
    conn = session.connection()
    t = _IDEMPOTENCY.c
    rows = conn.execute(select(t.client, t.key).where(t.created_at < before).limit(limit)).all()
    deleted = 0
    for client, key in rows:
        stmt = delete(_IDEMPOTENCY).where(t.client == client, t.key == key, t.created_at < before)
        deleted += conn.execute(stmt).rowcount or 0
    return len(rows), deleted


def shred_counts(session: Session, ids: Sequence[UUID]) -> dict[UUID, dict[str, int]]:
    """How many rows :func:`shred` is about to delete per customer (erasure certificates):
    ``confirmation_tokens`` and ``idempotency_answers``."""
    conn = session.connection()
    out: dict[UUID, dict[str, int]] = {
        cid: {"confirmation_tokens": 0, "idempotency_answers": 0} for cid in ids
    }
    for table, name in (
        (_CONFIRMATION, "confirmation_tokens"),
        (_IDEMPOTENCY, "idempotency_answers"),
    ):
        for cid, n in conn.execute(
            select(table.c.customer_id, func.count())
            .where(table.c.customer_id.in_(ids))
            .group_by(table.c.customer_id)
        ):
            out[cid][name] = n
    return out
