"""Tracked data-subject requests (GDPR Art. 12(3)/(4)): the deadline calendar, create, get,
extend, close, list and :func:`complete_request`, which every right calls to close (or record)
the request it answers. Also the two helpers every DSR function shares: :func:`record_audit`
(each of them is audited as ``dsr.<what>``) and :func:`check_free_text_reason` (free text that
goes into the audit log)."""

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
from vault.audit.errors import AuditPiiRefused, InvalidAuditEvent
from vault.customers import service as customers_service
from vault.db import utcnow
from vault.dsr.errors import (
    ExtensionReasonRequired,
    ExtensionTooLong,
    ReasonContainsPersonalData,
    RejectionReasonRequired,
    RequestClosed,
    RequestNotFound,
)
from vault.dsr.models import DataSubjectRequest, RequestKind, RequestStatus
from vault.errors import InvalidRequest
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


def check_free_text_reason(reason: str) -> str:
    """Free-text reasons go into the audit log: refuse what the audit log would refuse as PII."""
    reason = " ".join(reason.split())
    try:
        audit_record.canonical_details({"reason": reason})
    except AuditPiiRefused:
        raise ReasonContainsPersonalData() from None
    except InvalidAuditEvent:
        raise InvalidRequest("The reason is not valid.", code="invalid_reason") from None
    return reason


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


def request_public(row: DataSubjectRequest, now: datetime | None = None) -> dict[str, Any]:
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
        "created_by": row.created_by,
        "handled_by": row.handled_by,
        "closed_at": row.closed_at,
        "close_reason": row.close_reason,
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
    request_uuid: UUID,
    months: int,
    reason: str | None,
    by: Caller,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Extend the deadline by ``months`` (Art. 12(3): at most two further months in total,
    only with a reason, which must be told to the data subject within the first month)."""
    now = now or utcnow()
    if not reason or not reason.strip():
        raise ExtensionReasonRequired()
    reason = check_free_text_reason(reason)
    row = get_request(session, request_uuid, lock=True)
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
        reason=reason,
    )
    return row


def close_request(
    *,
    session: Session,
    request_uuid: UUID,
    status: str,
    by: Caller,
    reason: str | None = None,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Close a request as ``completed`` or ``rejected`` (a rejection needs a reason)."""
    now = now or utcnow()
    status = RequestStatus(status)
    if status == RequestStatus.OPEN:
        raise InvalidRequest("Close with 'completed' or 'rejected'.", code="invalid_status")
    if status == RequestStatus.REJECTED and not (reason and reason.strip()):
        raise RejectionReasonRequired()
    clean = check_free_text_reason(reason) if reason and reason.strip() else None
    row = get_request(session, request_uuid, lock=True)
    if row.status != RequestStatus.OPEN:
        raise RequestClosed()
    row.status, row.handled_by, row.closed_at, row.close_reason = status, by.actor, now, clean
    session.add(row)
    session.flush()
    details: dict[str, Any] = {"kind": row.kind, "status": status}
    if clean:
        details["reason"] = clean
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
