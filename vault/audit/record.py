"""Writing audit events: :func:`record`, :func:`record_many` and the checks every field passes.

**Writing is one INSERT.** :func:`record` (and :func:`record_many` for bulk exports: one
``executemany`` on SQLite, ``COPY`` on PostgreSQL) inserts into ``audit_event`` inside the
caller's transaction: the event commits with the change or release it describes, or not at all,
and the caller answers only after the commit. Writers take no lock beyond their own row; the row
gets its id from the database and has no ``seq`` and no ``hash`` yet (:mod:`vault.audit.seal`
chains it after commit).

**No PII.** Events carry ids, purpose and attribute *names*, outcomes and machine-readable
reasons. Every string field is checked against a strict pattern; ``details`` values that look
like contact data (an ``@``, a run of 8 or more digits outside a UUID, an integer of 10 or more
digits) are refused with :class:`AuditPiiRefused`. This is a defensive net, not a licence to pass
arbitrary data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import orjson
from sqlmodel import Session

from vault.audit.chain import BODY_COLUMNS
from vault.audit.errors import AuditPiiRefused, InvalidAuditEvent
from vault.db import driver_execute, utcnow
from vault.provenance import Caller

OUTCOMES = frozenset({"success", "allowed", "denied", "error"})
MAX_DETAILS_BYTES = 2048

_ACTOR = re.compile(r"([a-z][a-z_]{1,15})(?::([A-Za-z0-9._:\-]{1,200}))?")
_ACTION = re.compile(r"[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){1,3}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_REASON = re.compile(r"[a-z][a-z0-9_.:\-]{0,127}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_DIGIT_RUN = re.compile(r"\d{8,}")
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)

# Inserts bypass the ORM and SQLAlchemy's bind processing (hot path: one row per release,
# 100k+ rows per bulk export); _db_values converts exactly as UTCDateTime and Uuid would.
# The inserted columns are the event body the chain hashes, in the same order.
_INSERT_COLUMNS = BODY_COLUMNS
_INSERT_SQLITE = (
    f"INSERT INTO audit_event ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"
)
_INSERT_PG = (
    f"INSERT INTO audit_event ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_INSERT_COLUMNS))})"
)
_COPY_PG = f"COPY audit_event ({', '.join(_INSERT_COLUMNS)}) FROM STDIN"
_RECORD_KEYS = frozenset(
    {
        "actor",
        "action",
        "outcome",
        "customer_id",
        "purpose",
        "attributes",
        "reason",
        "request_id",
        "details",
        "now",
    }
)


@lru_cache(maxsize=4096)
def _split_actor(actor: str) -> tuple[str, str | None]:
    m = _ACTOR.fullmatch(actor) if isinstance(actor, str) else None
    if m is None:
        raise InvalidAuditEvent("actor must look like 'client:<id>', 'customer:<uuid>' or 'cli'.")
    return m.group(1), m.group(2)


@lru_cache(maxsize=1024)
def _check_action(action: str) -> str:
    if not isinstance(action, str) or len(action) > 64 or not _ACTION.fullmatch(action):
        raise InvalidAuditEvent("action must be a dotted lower-case name such as 'data.read'.")
    return action


@lru_cache(maxsize=1024)
def _check_name(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidAuditEvent(f"{what} must be a snake_case name.")
    return value


@lru_cache(maxsize=1024)
def _check_attributes(names: tuple[str, ...]) -> str:
    for n in names:
        _check_name(n, "attribute")
    joined = ",".join(names)
    if len(joined) > 4000:
        raise InvalidAuditEvent("Too many attribute names for one audit event.")
    return joined


@lru_cache(maxsize=1024)
def _check_reason_code(reason: str | None) -> str | None:
    if reason is None or reason == "":
        return None
    if not isinstance(reason, str) or not _REASON.fullmatch(reason):
        raise InvalidAuditEvent("reason must be a machine-readable code such as 'no_consent'.")
    return reason


def _check_request_id(request_id: str | None) -> str | None:
    if request_id is None or request_id == "":
        return None
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise InvalidAuditEvent("request_id must be a short token.")
    return request_id


def _looks_like_pii(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return False
    if isinstance(value, int):
        return abs(value) >= 10**9
    if isinstance(value, str):
        if "@" in value:
            return True
        return bool(_DIGIT_RUN.search(_UUID.sub("", value)))
    return True  # other types are not allowed at all


def _check_details_value(value: Any, depth: int) -> None:
    if isinstance(value, Mapping):
        if depth > 1:
            raise InvalidAuditEvent("details may nest one level at most.")
        for k, v in value.items():
            if not isinstance(k, str) or not _NAME.fullmatch(k):
                raise InvalidAuditEvent("details keys must be snake_case names.")
            _check_details_value(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            if isinstance(v, Mapping | list | tuple):
                raise InvalidAuditEvent("details lists hold plain values only.")
            _check_details_value(v, depth)
    elif _looks_like_pii(value):
        raise AuditPiiRefused(
            "details refused: a value looks like contact data or is not a plain value."
        )


def canonical_details(details: Mapping[str, Any] | None) -> str | None:
    """Validate ``details`` and return its canonical JSON (sorted keys, compact), or None."""
    if not details:
        return None
    if not isinstance(details, Mapping):
        raise InvalidAuditEvent("details must be a JSON object.")
    _check_details_value(details, 0)
    text = orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()
    if len(text) > MAX_DETAILS_BYTES:
        raise InvalidAuditEvent("details are too large for an audit event.")
    return text


def _customer_id(value: UUID | str | None) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidAuditEvent("customer_id must be a UUID.") from None


def _row(
    *,
    actor: str,
    action: str,
    outcome: str = "success",
    customer_id: UUID | str | None = None,
    purpose: str | None = None,
    attributes: Sequence[str] = (),
    reason: str | None = None,
    request_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    actor_type, actor_id = _split_actor(actor)
    if outcome not in OUTCOMES:
        raise InvalidAuditEvent(f"outcome must be one of {', '.join(sorted(OUTCOMES))}.")
    if isinstance(attributes, str):
        attributes = (attributes,)
    return {
        "occurred_at": now or utcnow(),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": _check_action(action),
        "outcome": outcome,
        "customer_id": _customer_id(customer_id),
        "purpose": _check_name(purpose, "purpose"),
        "attributes": _check_attributes(tuple(attributes)),
        "reason": _check_reason_code(reason),
        "request_id": _check_request_id(request_id),
        "details": canonical_details(details),
    }


def _sqlite_time(value: datetime) -> str:
    # The format SQLAlchemy's SQLite DATETIME writes (and parses back).
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _db_values(row: dict[str, Any], sqlite: bool) -> tuple:
    values = tuple(row[c] for c in _INSERT_COLUMNS)
    if not sqlite:
        return values
    cid = row["customer_id"]
    return (
        _sqlite_time(row["occurred_at"]),
        *values[1:5],
        cid.hex if cid is not None else None,
        *values[6:],
    )


def record(
    *,
    session: Session,
    action: str,
    by: Caller,
    outcome: str = "success",
    customer_id: UUID | None = None,
    purpose: str | None = None,
    attributes: Sequence[str] = (),
    reason: str | None = None,
    details: dict | None = None,
    now: datetime | None = None,
) -> None:
    """Write one audit event in the caller's transaction (one INSERT; the caller commits).

    Raises :class:`InvalidAuditEvent` (or :class:`AuditPiiRefused`) for malformed input: the
    caller's transaction must then fail, since an unaudited release is not allowed."""
    row = _row(
        actor=by.actor,
        action=action,
        outcome=outcome,
        customer_id=customer_id,
        purpose=purpose,
        attributes=attributes,
        reason=reason,
        request_id=by.request_id,
        details=details,
        now=now,
    )
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    driver_execute(conn, _INSERT_SQLITE if sqlite else _INSERT_PG, _db_values(row, sqlite))


def record_many(*, session: Session, events: Sequence[Mapping[str, Any]]) -> None:
    """Write many audit events at once (bulk exports): ``executemany`` on SQLite, ``COPY`` on
    PostgreSQL, in the caller's transaction. Each mapping takes the keyword arguments of
    :func:`record` except ``session``; ``now`` defaults to one shared now.

    Events that differ only in ``customer_id`` are validated once."""
    if not events:
        return
    now = utcnow()
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    shapes: dict[tuple, tuple] = {}
    rows: list[tuple] = []
    append = rows.append
    for event in events:
        if not _RECORD_KEYS.issuperset(event):
            raise InvalidAuditEvent("An audit event has unknown keys.")
        if event.get("details"):
            row = _row(**{**event, "now": event.get("now") or now})
            append(_db_values(row, sqlite))
            continue
        attrs = event.get("attributes", ())
        key = (
            event.get("actor"),
            event.get("action"),
            event.get("outcome", "success"),
            event.get("purpose"),
            attrs if isinstance(attrs, str) else tuple(attrs),
            event.get("reason"),
            event.get("request_id"),
            event.get("now") or now,
        )
        shape = shapes.get(key)
        if shape is None:
            fields = {k: v for k, v in event.items() if k != "customer_id"}
            fields["now"] = key[-1]
            shape = shapes[key] = _db_values(_row(**fields), sqlite)
        cid = event.get("customer_id")
        if cid is not None:
            cid = _customer_id(cid)
            if sqlite:
                cid = cid.hex  # type: ignore[union-attr]
        append((*shape[:5], cid, *shape[6:]))
    if sqlite:
        conn.exec_driver_sql(_INSERT_SQLITE, rows)
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(_COPY_PG) as copy:
        for r in rows:
            copy.write_row(r)


def actor_text(actor_type: str, actor_id: str | None) -> str:
    return f"{actor_type}:{actor_id}" if actor_id else actor_type
