"""Tracked data-subject requests (GDPR Art. 12(3)/(4)): the deadline calendar, create, get,
extend, close, list and :func:`complete_request`, which every right calls to close (or record)
the request it answers. Also the helper every DSR function shares: :func:`record_audit` (each
of them is audited as ``dsr.<what>``). Extensions and closings carry a coded reason
(:mod:`vault.dsr.models`) and an optional note sealed under the customer's key
(:mod:`vault.dsr.notes`); the audit log gets the code only."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, select
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.customers import store as customers_store
from vault.db import utcnow
from vault.dsr import notes
from vault.dsr.errors import (
    ExtensionReasonRequired,
    ExtensionTooLong,
    InvalidCloseReason,
    RejectionReasonRequired,
    RequestClosed,
    RequestNotFound,
)
from vault.dsr.models import (
    CompletionReason,
    DataSubjectRequest,
    ExtensionReason,
    RejectionReason,
    RequestKind,
    RequestStatus,
)
from vault.errors import CustomerErased, InvalidRequest
from vault.provenance import Caller

MAX_EXTENSION_MONTHS = 2
PAGE_MAX = 1000  # largest page of GET /v1/dsr/requests


# --- helpers ------------------------------------------------------------------------------


def record_audit(
    session: Session,
    by: Caller,
    action: str,
    customer_id: UUID | None,
    now: datetime,
    attributes: Sequence[str] = (),
    **details: Any,
) -> None:
    """The audit row of a DSR function; ``details`` that are None are left out."""
    audit_record.record(
        session=session,
        by=by,
        action=action,
        customer_id=customer_id,
        attributes=attributes,
        details={k: v for k, v in details.items() if v is not None} or None,
        now=now,
    )


def _seal_note(
    session: Session, envelope: Envelope, customer_id: UUID, label: str, note: str | None
) -> bytes | None:
    """A note for one of the customer's records, sealed under its key; an erased customer's
    records take codes only (410)."""
    if notes.clean(note) is None:
        return None
    customer = customers_service.get_customer(session, customer_id, allow_erased=True)
    if customer.dek_wrapped is None:
        raise CustomerErased(
            "This customer has been erased: its requests keep a reason code, not a note."
        )
    return notes.seal(envelope, customer, label, note)


def _lock_for_update(session: Session, request_uuid: UUID) -> DataSubjectRequest:
    """The request, locked for a change, after its customer's row (the lock order every writer
    of a customer follows; erasure nulls the notes of the customer's requests)."""
    row = get_request(session, request_uuid)
    customers_store.lock_many(session, [row.customer_id])
    return get_request(session, request_uuid, lock=True)


# --- calendar ------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months; the day is clamped to the target month's length
    (31 January + 1 month = 28/29 February), the time of day kept."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_at(received_at: datetime, extension_months: int = 0) -> datetime:
    """Art. 12(3): one month after receipt, plus any extension."""
    return add_months(received_at, 1 + extension_months)


# --- request tracking ---------------------------------------------------------------------


def request_public(
    row: DataSubjectRequest, reader: notes.NoteReader, now: datetime | None = None
) -> dict[str, Any]:
    """The answer for one request: codes, and the notes while the customer exists."""
    now = now or utcnow()
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "kind": row.kind,
        "status": row.status,
        "received_at": row.received_at,
        "due_at": row.due_at,
        "extension_months": row.extension_months,
        "extension_reason": row.extension_reason,
        "extension_note": reader.open(
            row.customer_id, notes.extension_label(row.id), row.extension_note
        ),
        "created_by": row.created_by,
        "handled_by": row.handled_by,
        "closed_at": row.closed_at,
        "close_reason": row.close_reason,
        "close_note": reader.open(row.customer_id, notes.close_label(row.id), row.close_note),
        "overdue": row.status == RequestStatus.OPEN and row.due_at < now,
    }


def create_request(
    *,
    session: Session,
    customer_id: UUID,
    kind: str,
    by: Caller,
    received_at: datetime | None = None,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Record a request as received (status ``open``, due one calendar month later)."""
    now = now or utcnow()
    kind = RequestKind(kind)
    received_at = received_at or now
    if received_at > now:
        raise InvalidRequest("received_at lies in the future.", code="received_at_in_future")
    customers_service.get_customer(session, customer_id, allow_erased=True)
    row = DataSubjectRequest(
        customer_id=customer_id,
        kind=kind,
        received_at=received_at,
        due_at=due_at(received_at),
        created_by=by.actor,
        created_at=now,
    )
    session.add(row)
    session.flush()
    record_audit(
        session,
        by,
        AuditAction.DSR_REQUEST_RECEIVED,
        customer_id,
        now,
        kind=kind,
    )
    return row


def get_request(session: Session, request_uuid: UUID, *, lock: bool = False) -> DataSubjectRequest:
    stmt = select(DataSubjectRequest).where(DataSubjectRequest.id == request_uuid)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise RequestNotFound()
    return row


def extend_request(
    *,
    session: Session,
    envelope: Envelope,
    request_uuid: UUID,
    months: int,
    reason: str | None,
    by: Caller,
    note: str | None = None,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Extend the deadline by ``months`` (Art. 12(3): at most two further months in total,
    only for the complexity or the number of requests (``reason``, an
    :class:`~vault.dsr.models.ExtensionReason`), which must be told to the data subject within
    the first month). ``note`` is kept sealed under the customer's key."""
    now = now or utcnow()
    if not reason:
        raise ExtensionReasonRequired()
    reason = ExtensionReason(reason)
    row = _lock_for_update(session, request_uuid)
    if row.status != RequestStatus.OPEN:
        raise RequestClosed()
    total = row.extension_months + months
    if months < 1 or total > MAX_EXTENSION_MONTHS:
        raise ExtensionTooLong(
            f"Already extended by {row.extension_months} month(s); at most "
            f"{MAX_EXTENSION_MONTHS} in total."
        )
    row.extension_months = total
    row.extension_reason = reason
    row.extension_note = _seal_note(
        session, envelope, row.customer_id, notes.extension_label(row.id), note
    )
    row.due_at = due_at(row.received_at, total)
    session.add(row)
    session.flush()
    record_audit(
        session,
        by,
        AuditAction.DSR_REQUEST_EXTENDED,
        row.customer_id,
        now,
        kind=row.kind,
        months=total,
        reason=str(reason),
    )
    return row


_CLOSE_REASONS: dict[str, type[RejectionReason | CompletionReason]] = {
    RequestStatus.REJECTED: RejectionReason,
    RequestStatus.COMPLETED: CompletionReason,
}


def close_request(
    *,
    session: Session,
    envelope: Envelope,
    request_uuid: UUID,
    status: str,
    by: Caller,
    reason: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Close a request as ``completed`` (optionally with a
    :class:`~vault.dsr.models.CompletionReason`) or ``rejected`` (with a
    :class:`~vault.dsr.models.RejectionReason`, required: Art. 12(4)). ``note`` is kept
    sealed under the customer's key."""
    now = now or utcnow()
    status = RequestStatus(status)
    if status == RequestStatus.OPEN:
        raise InvalidRequest("Close with 'completed' or 'rejected'.", code="invalid_status")
    if status == RequestStatus.REJECTED and not reason:
        raise RejectionReasonRequired()
    codes = _CLOSE_REASONS[status]
    if reason is not None and reason not in codes.__members__.values():
        raise InvalidCloseReason(f"A request closed as {status} takes one of: {', '.join(codes)}.")
    row = _lock_for_update(session, request_uuid)
    if row.status != RequestStatus.OPEN:
        raise RequestClosed()
    row.status, row.handled_by, row.closed_at, row.close_reason = status, by.actor, now, reason
    row.close_note = _seal_note(session, envelope, row.customer_id, notes.close_label(row.id), note)
    session.add(row)
    session.flush()
    details: dict[str, Any] = {"kind": row.kind, "status": status}
    if reason:
        details["reason"] = str(reason)
    record_audit(
        session,
        by,
        AuditAction.DSR_REQUEST_CLOSED,
        row.customer_id,
        now,
        **details,
    )
    return row


def list_requests(
    *,
    session: Session,
    customer_id: UUID | None = None,
    kind: str | None = None,
    status: str | None = None,
    overdue: bool = False,
    now: datetime | None = None,
    after: UUID | None = None,
    limit: int = 100,
) -> list[DataSubjectRequest]:
    """Requests by deadline (then id); ``overdue`` = still open and past ``due_at``."""
    now = now or utcnow()
    t = DataSubjectRequest
    clauses: list[Any] = []
    if customer_id is not None:
        clauses.append(t.customer_id == customer_id)
    if kind:
        clauses.append(t.kind == RequestKind(kind))
    if overdue:
        clauses += [t.status == RequestStatus.OPEN, t.due_at < now]
    elif status:
        clauses.append(t.status == RequestStatus(status))
    if after is not None:
        cursor_row = session.get(t, after)
        if cursor_row is None:
            raise InvalidRequest("The cursor is not valid.", code="invalid_cursor")
        clauses.append(
            (t.due_at > cursor_row.due_at) | and_(t.due_at == cursor_row.due_at, t.id > after)
        )
    stmt = select(t).where(*clauses).order_by(t.due_at, t.id).limit(max(1, min(limit, 1000)))
    return list(session.execute(stmt).scalars())


def complete_request(
    *, session: Session, customer_id: UUID, kind: str, now: datetime, by: Caller
) -> UUID:
    """Close the oldest open request of ``kind`` for the customer as handled by ``actor`` — or,
    if none was tracked (the request came straight to the API), record one already completed.
    Returns the request's id."""
    t = DataSubjectRequest
    row = session.execute(
        select(t)
        .where(t.customer_id == customer_id, t.kind == kind, t.status == RequestStatus.OPEN)
        .order_by(t.received_at, t.id)
        .limit(1)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        row = DataSubjectRequest(
            customer_id=customer_id,
            kind=kind,
            received_at=now,
            due_at=due_at(now),
            created_by=by.actor,
            created_at=now,
        )
    row.status, row.handled_by, row.closed_at = RequestStatus.COMPLETED, by.actor, now
    session.add(row)
    session.flush()
    return row.id
