"""Reading the audit log: filters, opaque cursors, one page or every matching event."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Engine, and_, func, or_, select
from sqlmodel import Session

from vault.audit.errors import InvalidCursor
from vault.audit.models import AuditEvent
from vault.audit.record import actor_text
from vault.db import reader

PAGE_MAX = 1000
EXPORT_BATCH = 5000
_MAX_ID = 2**63 - 1  # the id column is a 64-bit integer: a larger cursor cannot name a row


@dataclass(frozen=True)
class EventFilter:
    customer_id: UUID | None = None
    actor: str | None = None
    purpose: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[Any]:
        t = AuditEvent
        out: list[Any] = []
        if self.customer_id is not None:
            out.append(t.customer_id == self.customer_id)
        if self.actor:
            actor_type, _, actor_id = self.actor.partition(":")
            out.append(t.actor_type == actor_type)
            if actor_id:
                out.append(t.actor_id == actor_id)
        if self.purpose:
            out.append(t.purpose == self.purpose)
        if self.action:
            if self.action.endswith(".*"):
                out.append(t.action.startswith(self.action[:-1], autoescape=True))
            else:
                out.append(t.action == self.action)
        if self.outcome:
            out.append(t.outcome == self.outcome)
        if self.since is not None:
            out.append(t.occurred_at >= _aware(self.since))
        if self.until is not None:
            out.append(t.occurred_at < _aware(self.until))
        return out

    def used(self) -> list[str]:
        return [k for k, v in self.__dict__.items() if v is not None and v != ""]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_COLUMNS = (
    AuditEvent.id,
    AuditEvent.seq,
    AuditEvent.occurred_at,
    AuditEvent.actor_type,
    AuditEvent.actor_id,
    AuditEvent.action,
    AuditEvent.outcome,
    AuditEvent.customer_id,
    AuditEvent.purpose,
    AuditEvent.attributes,
    AuditEvent.reason,
    AuditEvent.request_id,
    AuditEvent.details,
)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"a1:{last_id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, value = raw.partition(":")
        if tag != "a1" or not value.isascii() or not value.isdigit() or len(value) > 19:
            raise ValueError
        after = int(value)
        if after > _MAX_ID:
            raise ValueError
        return after
    except ValueError:
        raise InvalidCursor() from None


def to_public(row: Any) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "occurred_at": row.occurred_at,
        "actor": actor_text(row.actor_type, row.actor_id),
        "action": row.action,
        "outcome": row.outcome,
        "customer_id": row.customer_id,
        "purpose": row.purpose,
        "attributes": row.attributes.split(",") if row.attributes else [],
        "reason": row.reason,
        "request_id": row.request_id,
        "details": orjson.loads(row.details) if row.details else None,
    }


def _select(flt: EventFilter, after_id: int, limit: int):
    return (
        select(*_COLUMNS)
        .where(and_(AuditEvent.id > after_id, *flt.clauses()))
        .order_by(AuditEvent.id)
        .limit(limit)
    )


def list_events(
    *, session: Session, filters: EventFilter, cursor: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], str | None]:
    """One page in insertion order, and the cursor of the next page (None at the end)."""
    limit = max(1, min(limit, PAGE_MAX))
    rows = session.execute(_select(filters, decode_cursor(cursor), limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [to_public(r) for r in rows], (encode_cursor(rows[-1].id) if more else None)


def iter_events(
    *, engine: Engine, filters: EventFilter, batch_size: int = EXPORT_BATCH
) -> Iterator[dict[str, Any]]:
    """Every matching event, in keyset batches, each batch in its own short read transaction,
    so an export of millions of events holds neither memory nor locks."""
    after = 0
    read = reader(engine)
    while True:
        with Session(read) as s:
            rows = s.execute(_select(filters, after, batch_size)).all()
        for r in rows:
            yield to_public(r)
        if len(rows) < batch_size:
            return
        after = rows[-1].id


def latest_releases(
    session: Session,
    customer_id: UUID,
    actions: Iterable[str],
    limit: int,
    *,
    staff_actions: Iterable[str] = (),
) -> list[Any]:
    """The customer's latest allowed releases of data to API clients (``actions``), and what
    staff did with it (``staff_actions`` by actor ``staff:<id>``: the counter's reads and
    searches), newest first: rows of ``occurred_at, actor_type, actor_id, action, purpose,
    attributes, details`` (self-service "who used my data")."""
    by_client = and_(
        AuditEvent.actor_type == "client",
        AuditEvent.action.in_(list(actions)),
        AuditEvent.outcome == "allowed",
    )
    staff = list(staff_actions)
    by_staff = and_(
        AuditEvent.actor_type == "staff",
        AuditEvent.action.in_(staff),
        AuditEvent.outcome.in_(["allowed", "success"]),
    )
    return list(
        session.execute(
            select(
                AuditEvent.occurred_at,
                AuditEvent.actor_type,
                AuditEvent.actor_id,
                AuditEvent.action,
                AuditEvent.purpose,
                AuditEvent.attributes,
                AuditEvent.details,
            )
            .where(
                AuditEvent.customer_id == customer_id,
                or_(by_client, by_staff) if staff else by_client,
            )
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        ).all()
    )


def last_releases(session: Session, customer_id: UUID, actions: Iterable[str]) -> dict[str, Any]:
    """The customer's last allowed release per purpose (``actions``): ``{purpose: row of
    occurred_at, action, actor_type, actor_id}`` (the consent dossier's "last used").

    Two reads over the customer's own events (index ``customer_id``), however long the log:
    the newest id per purpose, then those rows."""
    wanted = list(actions)
    newest = (
        select(func.max(AuditEvent.id))
        .where(
            AuditEvent.customer_id == customer_id,
            AuditEvent.action.in_(wanted),
            AuditEvent.outcome == "allowed",
            AuditEvent.purpose.is_not(None),
        )
        .group_by(AuditEvent.purpose)
    )
    rows = session.execute(
        select(
            AuditEvent.purpose,
            AuditEvent.occurred_at,
            AuditEvent.action,
            AuditEvent.actor_type,
            AuditEvent.actor_id,
        ).where(AuditEvent.customer_id == customer_id, AuditEvent.id.in_(newest))
    ).all()
    return {r.purpose: r for r in rows}


# --- exports ----------------------------------------------------------------------------------

NDJSON = "application/x-ndjson"
CSV = "text/csv"
CSV_COLUMNS = [
    "seq",
    "occurred_at",
    "actor",
    "action",
    "outcome",
    "customer_id",
    "purpose",
    "attributes",
    "reason",
    "request_id",
    "details",
]


def ndjson_lines(events: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """The events as NDJSON lines (the API's and the staff console's export)."""
    for e in events:
        yield orjson.dumps(e) + b"\n"


def csv_chunks(events: Iterator[dict[str, Any]]) -> Iterator[str]:
    """The events as CSV, header first, in chunks of 500 rows."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for n, e in enumerate(events, 1):
        writer.writerow(
            [
                "" if e["seq"] is None else e["seq"],
                e["occurred_at"].isoformat(),
                e["actor"],
                e["action"],
                e["outcome"],
                e["customer_id"] or "",
                e["purpose"] or "",
                " ".join(e["attributes"]),
                e["reason"] or "",
                e["request_id"] or "",
                orjson.dumps(e["details"]).decode() if e["details"] else "",
            ]
        )
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
