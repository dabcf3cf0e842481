"""Data-subject rights as service functions: every door (the DSR API, the self-service page, the
CLI) calls these. Keyword-only, never commit, raise :mod:`vault.errors` subclasses.

- :func:`export` — Art. 15 / Art. 20: every attribute decrypted with its labels, consent state
  and full consent history, purposes with legal basis, recipients, retention, the access history
  from the audit log, and the customer's tracked requests. Audited as ``dsr.access``.
- :func:`erase` / :func:`erase_many` — Art. 17 by crypto-shredding: the wrapped data key is set
  to NULL and values, blind-index rows, confirmation tokens and idempotency answers are deleted
  in the caller's one transaction; the customer row stays as a tombstone (``erased_at``,
  ``erased_by``); the consent ledger, its projection and the audit log stay (ids only, no clear
  PII). A legal hold (Art. 17(3)) refuses with 409.
- :func:`restrict` / :func:`lift_restriction` (Art. 18), :func:`object_to` /
  :func:`withdraw_objection` (Art. 21) set ``customer.status`` and ``customer.objections``, which
  the pure access decision (:mod:`vault.policy.decision`) already honours.
- Every one of them is audited (``dsr.<what>``), emits its outbox event where downstream tools
  must act, and records or closes a tracked request (:func:`complete_request`).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import and_, delete, insert, select, update
from sqlmodel import Session

from vault.audit import service as audit_service
from vault.audit.service import AuditPiiRefused, EventFilter, InvalidAuditEvent
from vault.consent import reads as consent_reads
from vault.consent import schemas as consent_schemas
from vault.consent.models import ConsentConfirmation, ConsentIdempotency
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.customers.models import BlindIndex, Customer, CustomerStatus, CustomerValue
from vault.db import utcnow
from vault.dsr.models import DataSubjectRequest, RequestKind, RequestStatus
from vault.errors import Conflict, InvalidRequest, NotFound
from vault.events import service as events_service
from vault.events.models import EventType
from vault.policy import LegalBasis, Policy
from vault.policy.decision import DIRECT_MARKETING

EXPORT_FORMAT = "consent-vault/export/v1"
# Countries of the EU and the EEA: a recipient elsewhere is a transfer to a third country
# (GDPR Chapter V) and is marked so in the export and the Art. 30 record.
_EEA_CODES = (
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK IS LI NO"
)
EEA = frozenset(_EEA_CODES.split())
MAX_EXTENSION_MONTHS = 2
PAGE_MAX = 1000  # largest page of GET /v1/dsr/requests
_CHUNK = 500  # ids per IN (...) list


# --- errors -------------------------------------------------------------------------------


class LegalHold(Conflict):
    code = "legal_hold"
    default_detail = "The customer's data is under a legal hold (GDPR Art. 17(3))."


class InvalidObjectionScope(InvalidRequest):
    code = "invalid_objection_scope"
    default_detail = (
        "An objection names 'direct_marketing' or the id of a legitimate-interest purpose."
    )


class ExtensionReasonRequired(InvalidRequest):
    code = "extension_reason_required"
    default_detail = "Extending a deadline needs a reason (GDPR Art. 12(3))."


class ExtensionTooLong(InvalidRequest):
    code = "extension_too_long"
    default_detail = "A deadline can be extended by at most two further months in total."


class RejectionReasonRequired(InvalidRequest):
    code = "rejection_reason_required"
    default_detail = "Rejecting a request needs a reason (GDPR Art. 12(4))."


class ReasonContainsPersonalData(InvalidRequest):
    code = "reason_contains_personal_data"
    default_detail = (
        "The reason looks like it contains personal data (an e-mail address or a long number); "
        "describe it without them."
    )


class RequestNotFound(NotFound):
    code = "dsr_request_not_found"
    default_detail = "No data-subject request with this id."


class RequestClosed(Conflict):
    code = "dsr_request_closed"
    default_detail = "This request is already closed."


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


def _check_reason(reason: str) -> str:
    """Reasons go into the audit log: refuse what the audit log would refuse as PII."""
    reason = " ".join(reason.split())
    try:
        audit_service.canonical_details({"reason": reason})
    except AuditPiiRefused:
        raise ReasonContainsPersonalData() from None
    except InvalidAuditEvent:
        raise InvalidRequest("The reason is not valid.", code="invalid_reason") from None
    return reason


# --- request tracking ---------------------------------------------------------------------


def _request_public(row: DataSubjectRequest, now: datetime) -> dict[str, Any]:
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


def request_public(row: DataSubjectRequest, now: datetime | None = None) -> dict[str, Any]:
    return _request_public(row, now or utcnow())


def create_request(
    *,
    session: Session,
    customer_id: UUID,
    kind: str,
    actor: str,
    received_at: datetime | None = None,
    request_id: str | None = None,
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
        created_by=actor,
        created_at=now,
    )
    session.add(row)
    session.flush()
    _audit(session, actor, "dsr.request_received", customer_id, request_id, now, kind=kind)
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
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Extend the deadline by ``months`` (Art. 12(3): at most two further months in total,
    only with a reason, which must be told to the data subject within the first month)."""
    now = now or utcnow()
    if not reason or not reason.strip():
        raise ExtensionReasonRequired()
    reason = _check_reason(reason)
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
    _audit(
        session,
        actor,
        "dsr.request_extended",
        row.customer_id,
        request_id,
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
    actor: str,
    reason: str | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> DataSubjectRequest:
    """Close a request as ``completed`` or ``rejected`` (a rejection needs a reason)."""
    now = now or utcnow()
    status = RequestStatus(status)
    if status == RequestStatus.OPEN:
        raise InvalidRequest("Close with 'completed' or 'rejected'.", code="invalid_status")
    if status == RequestStatus.REJECTED and not (reason and reason.strip()):
        raise RejectionReasonRequired()
    clean = _check_reason(reason) if reason and reason.strip() else None
    row = get_request(session, request_uuid, lock=True)
    if row.status != RequestStatus.OPEN:
        raise RequestClosed()
    row.status, row.handled_by, row.closed_at, row.close_reason = status, actor, now, clean
    session.add(row)
    session.flush()
    details: dict[str, Any] = {"kind": row.kind, "status": status}
    if clean:
        details["reason"] = clean
    _audit(session, actor, "dsr.request_closed", row.customer_id, request_id, now, **details)
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
    *,
    session: Session,
    customer_id: UUID,
    kind: str,
    actor: str,
    now: datetime,
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
            created_by=actor,
            created_at=now,
        )
    row.status, row.handled_by, row.closed_at = RequestStatus.COMPLETED, actor, now
    session.add(row)
    session.flush()
    return row.id


# --- helpers ------------------------------------------------------------------------------


def _audit(
    session: Session,
    actor: str,
    action: str,
    customer_id: UUID | None,
    request_id: str | None,
    now: datetime,
    attributes: Sequence[str] = (),
    **details: Any,
) -> None:
    audit_service.record(
        session=session,
        actor=actor,
        action=action,
        customer_id=customer_id,
        attributes=attributes,
        request_id=request_id,
        details={k: v for k, v in details.items() if v is not None} or None,
        now=now,
    )


@dataclass(frozen=True)
class RightsResult:
    customer: Customer
    request_uuid: UUID | None = None
    changed: bool = True


def rights_public(result: RightsResult) -> dict[str, Any]:
    c = result.customer
    return {
        "customer_id": c.id,
        "status": c.status,
        "objections": sorted(c.objection_set),
        "legal_hold": c.legal_hold,
        "legal_hold_reason": c.legal_hold_reason,
        "erased_at": c.erased_at,
        "request_id": result.request_uuid,
    }


def _save(
    session: Session,
    customer: Customer,
    now: datetime,
    event: EventType | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Write the changed customer row; with ``event``, also its outbox event."""
    customer.updated_at = now
    session.add(customer)
    session.flush()
    if event is not None:
        events_service.emit(
            session=session, type=event, customer_id=customer.id, data=data or {}, now=now
        )


# --- restriction (Art. 18) and objection (Art. 21) --------------------------------------------


def restrict(
    *,
    session: Session,
    customer_id: UUID,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> RightsResult:
    """Restrict processing: from now on nothing is released to any purpose (the customer's
    data is stored, not used). Idempotent."""
    now = now or utcnow()
    customer = customers_service.lock_customer(session, customer_id)
    changed = customer.status != CustomerStatus.RESTRICTED
    if changed:
        customer.status = CustomerStatus.RESTRICTED
        _save(
            session,
            customer,
            now,
            EventType.CUSTOMER_RESTRICTED,
            {"status": CustomerStatus.RESTRICTED},
        )
    req = complete_request(
        session=session, customer_id=customer.id, kind=RequestKind.RESTRICTION, actor=actor, now=now
    )
    _audit(session, actor, "dsr.restriction", customer.id, request_id, now, changed=changed)
    return RightsResult(customer, req, changed)


def lift_restriction(
    *,
    session: Session,
    customer_id: UUID,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> RightsResult:
    """End a restriction (Art. 18(3): the data subject must be told before). Idempotent."""
    now = now or utcnow()
    customer = customers_service.lock_customer(session, customer_id)
    changed = customer.status == CustomerStatus.RESTRICTED
    if changed:
        customer.status = CustomerStatus.ACTIVE
        _save(
            session,
            customer,
            now,
            EventType.CUSTOMER_UPDATED,
            {"status": CustomerStatus.ACTIVE, "restriction": "lifted"},
        )
    _audit(session, actor, "dsr.restriction_lifted", customer.id, request_id, now, changed=changed)
    return RightsResult(customer, None, changed)


def objection_scopes(policy: Policy) -> list[str]:
    """What an objection may name: direct marketing, or a legitimate-interest purpose."""
    legitimate = (
        p.id for p in policy.purposes.values() if p.legal_basis is LegalBasis.LEGITIMATE_INTEREST
    )
    return [DIRECT_MARKETING, *sorted(legitimate)]


def _check_scope(policy: Policy, scope: str) -> str:
    allowed = objection_scopes(policy)
    if scope not in allowed:
        raise InvalidObjectionScope(
            f"Objections name one of: {', '.join(allowed)}. Consent-based purposes are "
            "withdrawn, contract and legal-obligation purposes cannot be objected to."
        )
    return scope


def object_to(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    scope: str,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> RightsResult:
    """Record an objection. ``direct_marketing`` (Art. 21(2)/(3)) blocks every
    direct-marketing purpose whatever its basis, absolutely; a legitimate-interest purpose id
    (Art. 21(1)) blocks that purpose. Idempotent."""
    now = now or utcnow()
    scope = _check_scope(policy, scope)
    customer = customers_service.lock_customer(session, customer_id)
    current = customer.objection_set
    changed = scope not in current
    if changed:
        customer.objections = " ".join(sorted(current | {scope}))
        _save(
            session,
            customer,
            now,
            EventType.CUSTOMER_OBJECTED,
            {"scope": scope, "objections": sorted(customer.objection_set)},
        )
    req = complete_request(
        session=session, customer_id=customer.id, kind=RequestKind.OBJECTION, actor=actor, now=now
    )
    _audit(
        session,
        actor,
        "dsr.objection",
        customer.id,
        request_id,
        now,
        scope=scope,
        changed=changed,
    )
    return RightsResult(customer, req, changed)


def withdraw_objection(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    scope: str,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> RightsResult:
    """The data subject withdraws an objection. Idempotent."""
    now = now or utcnow()
    scope = _check_scope(policy, scope)
    customer = customers_service.lock_customer(session, customer_id)
    current = customer.objection_set
    changed = scope in current
    if changed:
        customer.objections = " ".join(sorted(current - {scope}))
        _save(
            session,
            customer,
            now,
            EventType.CUSTOMER_UPDATED,
            {"objection_withdrawn": scope, "objections": sorted(customer.objection_set)},
        )
    _audit(
        session,
        actor,
        "dsr.objection_withdrawn",
        customer.id,
        request_id,
        now,
        scope=scope,
        changed=changed,
    )
    return RightsResult(customer, None, changed)


# --- legal hold (Art. 17(3)) -------------------------------------------------------------------


def set_legal_hold(
    *,
    session: Session,
    customer_id: UUID,
    reason: str,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> RightsResult:
    """Refuse erasure until cleared (e.g. data needed for legal claims, Art. 17(3)(e))."""
    now = now or utcnow()
    reason = _check_reason(reason)
    customer = customers_service.lock_customer(session, customer_id)
    customer.legal_hold, customer.legal_hold_reason = True, reason
    _save(session, customer, now)
    _audit(session, actor, "dsr.legal_hold_set", customer.id, request_id, now, reason=reason)
    return RightsResult(customer)


def clear_legal_hold(
    *,
    session: Session,
    customer_id: UUID,
    reason: str,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> RightsResult:
    now = now or utcnow()
    reason = _check_reason(reason)
    customer = customers_service.lock_customer(session, customer_id)
    changed = customer.legal_hold
    customer.legal_hold, customer.legal_hold_reason = False, None
    _save(session, customer, now)
    _audit(
        session,
        actor,
        "dsr.legal_hold_cleared",
        customer.id,
        request_id,
        now,
        reason=reason,
        changed=changed,
    )
    return RightsResult(customer, None, changed)


# --- erasure (Art. 17) ----------------------------------------------------------------------

_CUSTOMER = Customer.__table__
_REQUEST = DataSubjectRequest.__table__
# Tables whose rows hold a customer's data or secrets derived from it; deleted on erasure.
_SHREDDED = (
    CustomerValue.__table__,
    BlindIndex.__table__,
    ConsentConfirmation.__table__,
    ConsentIdempotency.__table__,
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
    """One transaction (the caller's): destroy the keys, delete the data, leave tombstones."""
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
        )
    )
    for table in _SHREDDED:
        conn.execute(delete(table).where(table.c.customer_id.in_(ids)))
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


def _emit_erased(session: Session, ids: Sequence[UUID], now: datetime) -> None:
    for cid in ids:
        events_service.emit(
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
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> Customer:
    """Erase one customer (crypto-shredding). 404 unknown, 410 already erased, 409 under a
    legal hold (``reason`` in the error body). Returns the tombstone."""
    now = now or utcnow()
    customer = customers_service.lock_customer(session, customer_id)
    if customer.legal_hold:
        raise LegalHold(
            "Erasure refused: the customer's data is under a legal hold (GDPR Art. 17(3)).",
            reason=customer.legal_hold_reason,
        )
    names = customers_service.stored_attribute_names(session, customer.id)
    _shred(session, [customer.id], actor, now)
    _emit_erased(session, [customer.id], now)
    _audit(session, actor, "dsr.erasure", customer.id, request_id, now, attributes=names)
    session.expire(customer)
    session.refresh(customer)
    return customer


def record_refused_erasure(
    *,
    session: Session,
    customer_id: UUID,
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> None:
    """Audit an erasure refused because of a legal hold (the caller answers 409)."""
    audit_service.record(
        session=session,
        actor=actor,
        action="dsr.erasure",
        outcome="denied",
        customer_id=customer_id,
        reason="legal_hold",
        request_id=request_id,
        now=now,
    )


def erase_many(
    *,
    session: Session,
    customer_ids: Sequence[UUID],
    actor: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> EraseManyResult:
    """Erase many customers in the caller's one transaction (batch erasure, e.g. accounts
    closed long ago). Unknown, already erased and legally held customers are skipped and
    reported, not raised. Statements work on chunks of 500 ids."""
    now = now or utcnow()
    result = EraseManyResult()
    wanted = list(dict.fromkeys(customer_ids))
    conn = session.connection()
    for chunk in _chunks(wanted):
        rows = {
            cid: (status, hold)
            for cid, status, hold in conn.execute(
                select(_CUSTOMER.c.id, _CUSTOMER.c.status, _CUSTOMER.c.legal_hold)
                .where(_CUSTOMER.c.id.in_(chunk))
                .with_for_update()
            )
        }
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
        _shred(session, ids, actor, now)
        _emit_erased(session, ids, now)
        audit_service.record_many(
            session=session,
            events=[
                {
                    "actor": actor,
                    "action": "dsr.erasure",
                    "customer_id": cid,
                    "request_id": request_id,
                    "now": now,
                }
                for cid in ids
            ],
        )
        result.erased.extend(ids)
    return result


# --- export (Art. 15 / Art. 20) ------------------------------------------------------------


def effective_retention(policy: Policy) -> dict[str, tuple[int | None, str]]:
    """Per attribute: (days, rule). The attribute's own ``retention_days`` wins; otherwise, if
    every purpose that uses the attribute sets ``retention_days``, the longest of them (the
    value is needed as long as the longest-keeping purpose needs it); otherwise unbounded
    (kept until rectified away or erased)."""
    out: dict[str, tuple[int | None, str]] = {}
    for name, attr in policy.attributes.items():
        if attr.retention_days:
            out[name] = (attr.retention_days, "attribute")
            continue
        users = [p.retention_days for p in policy.purposes.values() if name in p.attributes]
        if users and all(d is not None for d in users):
            out[name] = (max(d for d in users if d is not None), "purposes")
        else:
            out[name] = (None, "none")
    return out


def recipients_public(policy: Policy) -> list[dict[str, Any]]:
    out = []
    for rid, r in policy.recipients.items():
        out.append(
            {
                "id": rid,
                "name": r.name.model_dump(),
                "kind": r.kind,
                "country": r.country,
                "third_country": r.country.upper() not in EEA,
                "purposes": [p.id for p in policy.purposes.values() if rid in p.recipients],
            }
        )
    return out


def _access_history(session: Session, customer_id: UUID) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    flt = EventFilter(customer_id=customer_id)
    while True:
        events, cursor = audit_service.list_events(
            session=session, filters=flt, cursor=cursor, limit=audit_service.PAGE_MAX
        )
        out.extend(
            {
                "occurred_at": e["occurred_at"].isoformat(),
                "actor": e["actor"],
                "action": e["action"],
                "outcome": e["outcome"],
                "purpose": e["purpose"],
                "attributes": e["attributes"],
                "reason": e["reason"],
            }
            for e in events
        )
        if cursor is None:
            return out


def build_export(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer_id: UUID,
    now: datetime | None = None,
    include_receipts: bool = False,
) -> dict[str, Any]:
    """The export document, read-only (no audit event, no request record): what
    :func:`export` returns. 404 unknown, 410 erased."""
    now = now or utcnow()
    customer = customers_service.get_customer(session, customer_id)
    values = customers_service.decrypt_values(session=session, envelope=envelope, customer=customer)
    updated = dict(
        session.execute(
            select(CustomerValue.attribute, CustomerValue.updated_at).where(
                CustomerValue.customer_id == customer.id
            )
        ).all()
    )
    retention = effective_retention(policy)
    order = [n for n in policy.attributes if n in values] + sorted(
        n for n in values if n not in policy.attributes
    )
    attributes = []
    for name in order:
        attr = policy.attributes.get(name)
        attributes.append(
            {
                "name": name,
                "label": attr.label.model_dump() if attr else {"de": name, "en": name},
                "category": attr.category.value if attr else None,
                "special_category": attr.special_category if attr else False,
                "value": values[name],
                "updated_at": updated[name].isoformat(),
                "retention_days": retention.get(name, (None, "none"))[0],
            }
        )
    states = consent_reads.effective_states(
        session=session, policy=policy, customer_id=customer.id, now=now
    )
    history = []
    for event in consent_reads.history(session=session, customer_id=customer.id, limit=10**9):
        item = consent_schemas.event_public(event)
        if include_receipts:
            item["receipt"] = event.receipt
        history.append(item)
    objections = customer.objection_set
    purposes = []
    for p in policy.purposes.values():
        state = states.get(p.id)
        purposes.append(
            {
                "id": p.id,
                "version": p.version,
                "legal_basis": p.legal_basis.value,
                "title": p.title.model_dump(),
                "description": p.description.model_dump(),
                "attributes": list(p.attributes),
                "reduce": {k: v.value for k, v in p.reduce.items()},
                "recipients": list(p.recipients),
                "retention_days": p.retention_days,
                "direct_marketing": p.direct_marketing,
                "consent": state.status if state is not None else None,
                "objected": (p.direct_marketing and DIRECT_MARKETING in objections)
                or (p.legal_basis is LegalBasis.LEGITIMATE_INTEREST and p.id in objections),
            }
        )
    requests = list_requests(session=session, customer_id=customer.id, now=now, limit=1000)
    return {
        "format": EXPORT_FORMAT,
        "generated_at": now,
        "controller": dict(policy.controller),
        "customer": {
            "id": str(customer.id),
            "status": customer.status,
            "created_at": customer.created_at.isoformat(),
            "updated_at": customer.updated_at.isoformat(),
            "objections": sorted(objections),
            "legal_hold": customer.legal_hold,
        },
        "attributes": attributes,
        "consents": [consent_schemas.state_public(s) for s in states.values()],
        "consent_history": history,
        "purposes": purposes,
        "recipients": recipients_public(policy),
        "retention": [
            {"attribute": name, "retention_days": days, "rule": rule}
            for name, (days, rule) in retention.items()
        ],
        "access_history": _access_history(session, customer.id),
        "requests": [
            {
                k: (
                    v.isoformat()
                    if isinstance(v, datetime)
                    else str(v)
                    if isinstance(v, UUID)
                    else v
                )
                for k, v in _request_public(r, now).items()
            }
            for r in requests
        ],
    }


def export(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer_id: UUID,
    actor: str,
    kind: str = RequestKind.ACCESS,
    include_receipts: bool = False,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Answer an access (Art. 15) or portability (Art. 20) request: the export document,
    audited as ``dsr.access`` / ``dsr.portability`` with the exported attribute names, and the
    oldest open request of that kind closed (or one recorded as completed).

    The self-service page calls this with ``actor=f"customer:{customer_id}"``."""
    now = now or utcnow()
    kind = RequestKind(kind)
    if kind not in (RequestKind.ACCESS, RequestKind.PORTABILITY):
        raise InvalidRequest("An export answers 'access' or 'portability'.", code="invalid_kind")
    # The document is read in several statements; under the customer lock (which every writer
    # of the customer takes first) they all see one committed state, not a rectification or
    # erasure that commits half-way through.
    customers_service.lock_customer(session, customer_id)
    document = build_export(
        session=session,
        envelope=envelope,
        policy=policy,
        customer_id=customer_id,
        now=now,
        include_receipts=include_receipts,
    )
    complete_request(session=session, customer_id=customer_id, kind=kind, actor=actor, now=now)
    _audit(
        session,
        actor,
        f"dsr.{kind}",
        customer_id,
        request_id,
        now,
        attributes=[a["name"] for a in document["attributes"]],
        consent_events=len(document["consent_history"]),
        access_events=len(document["access_history"]),
    )
    return document
