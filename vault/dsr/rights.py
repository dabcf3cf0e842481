"""Restriction, objection and legal hold on a customer, the rights that change the customer row
itself.

- :func:`restrict` / :func:`lift_restriction` (Art. 18), :func:`object_to` /
  :func:`withdraw_objection` (Art. 21) set ``customer.status`` and ``customer.objections``, which
  the pure access decision (:mod:`vault.policy.decision`) already honours.
- :func:`set_legal_hold` / :func:`clear_legal_hold` (Art. 17(3)) make erasure refuse.
- Reasons are codes (:class:`~vault.dsr.models.LegalHoldReason`, ``LegalHoldRelease``,
  ``RestrictionReason``), audited; a note beside one is sealed under the customer's key
  (:mod:`vault.dsr.notes`) and shown only while the customer exists.
- Every one of them is audited (``dsr.<what>``), emits its outbox event where downstream tools
  must act, and records or closes a tracked request (:func:`vault.dsr.requests.complete_request`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel import Session

from vault.audit.actions import AuditAction
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.customers.schemas import Customer, CustomerStatus
from vault.db import utcnow
from vault.dsr import notes
from vault.dsr.errors import InvalidObjectionScope
from vault.dsr.models import LegalHoldReason, LegalHoldRelease, RequestKind, RestrictionReason
from vault.dsr.requests import complete_request, record_audit
from vault.events import outbox as events_outbox
from vault.events.outbox import EventType
from vault.policy import LegalBasis, Policy
from vault.policy.decision import DIRECT_MARKETING
from vault.provenance import Caller

# --- helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RightsResult:
    customer: Customer
    request_uuid: UUID | None = None
    changed: bool = True


def rights_public(result: RightsResult, envelope: Envelope) -> dict[str, Any]:
    """Where the customer stands: codes, and the notes (opened with the customer's key)."""
    c = result.customer
    return {
        "customer_id": c.id,
        "status": c.status,
        "objections": sorted(c.objection_set),
        "legal_hold": c.legal_hold,
        "legal_hold_reason": c.legal_hold_reason,
        "legal_hold_note": notes.open_note(envelope, c, notes.LEGAL_HOLD, c.legal_hold_note),
        "restriction_reason": c.restriction_reason,
        "restriction_note": notes.open_note(envelope, c, notes.RESTRICTION, c.restriction_note),
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
    customers_service.save(session, customer, now)
    if event is not None:
        events_outbox.emit(
            session=session, type=event, customer_id=customer.id, data=data or {}, now=now
        )


def _seal(
    envelope: Envelope | None, customer: Customer, label: str, note: str | None
) -> bytes | None:
    """A note for the customer row, sealed under the customer's key (None without one)."""
    if notes.clean(note) is None:
        return None
    if envelope is None:
        raise ValueError("a note needs the envelope")
    return notes.seal(envelope, customer, label, note)


# --- restriction (Art. 18) and objection (Art. 21) --------------------------------------------


def restrict(
    *,
    session: Session,
    customer_id: UUID,
    by: Caller,
    envelope: Envelope | None = None,
    reason: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> RightsResult:
    """Restrict processing: from now on nothing is released to any purpose (the customer's
    data is stored, not used). ``reason`` is the Art. 18(1) ground
    (:class:`~vault.dsr.models.RestrictionReason`), ``note`` is sealed under the customer's key
    (it needs ``envelope``); a repeated restriction with a reason or note replaces them.
    Idempotent."""
    now = now or utcnow()
    reason = RestrictionReason(reason) if reason is not None else None
    customer = customers_service.lock_customer(session, customer_id)
    changed = customer.status != CustomerStatus.RESTRICTED
    noted = reason is not None or notes.clean(note) is not None
    if noted:
        customer.restriction_reason = reason
        customer.restriction_note = _seal(envelope, customer, notes.RESTRICTION, note)
    if changed:
        customer.status = CustomerStatus.RESTRICTED
        _save(
            session,
            customer,
            now,
            EventType.CUSTOMER_RESTRICTED,
            {"status": CustomerStatus.RESTRICTED},
        )
    elif noted:
        _save(session, customer, now)
    req = complete_request(
        session=session, customer_id=customer.id, kind=RequestKind.RESTRICTION, by=by, now=now
    )
    record_audit(
        session,
        by,
        AuditAction.DSR_RESTRICTION,
        customer.id,
        now,
        changed=changed,
        reason=str(reason) if reason is not None else None,
    )
    return RightsResult(customer, req, changed)


def lift_restriction(
    *,
    session: Session,
    customer_id: UUID,
    by: Caller,
    now: datetime | None = None,
) -> RightsResult:
    """End a restriction (Art. 18(3): the data subject must be told before). Idempotent."""
    now = now or utcnow()
    customer = customers_service.lock_customer(session, customer_id)
    changed = customer.status == CustomerStatus.RESTRICTED
    if changed:
        customer.status = CustomerStatus.ACTIVE
        customer.restriction_reason, customer.restriction_note = None, None
        _save(
            session,
            customer,
            now,
            EventType.CUSTOMER_UPDATED,
            {"status": CustomerStatus.ACTIVE, "restriction": "lifted"},
        )
    record_audit(
        session,
        by,
        AuditAction.DSR_RESTRICTION_LIFTED,
        customer.id,
        now,
        changed=changed,
    )
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
    by: Caller,
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
        session=session, customer_id=customer.id, kind=RequestKind.OBJECTION, by=by, now=now
    )
    record_audit(
        session,
        by,
        AuditAction.DSR_OBJECTION,
        customer.id,
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
    by: Caller,
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
    record_audit(
        session,
        by,
        AuditAction.DSR_OBJECTION_WITHDRAWN,
        customer.id,
        now,
        scope=scope,
        changed=changed,
    )
    return RightsResult(customer, None, changed)


# --- legal hold (Art. 17(3)) -------------------------------------------------------------------


def set_legal_hold(
    *,
    session: Session,
    envelope: Envelope,
    customer_id: UUID,
    reason: str,
    by: Caller,
    note: str | None = None,
    now: datetime | None = None,
) -> RightsResult:
    """Refuse erasure until cleared (e.g. § 147 AO records, data needed for legal claims,
    Art. 17(3)(e)). ``reason`` is a :class:`~vault.dsr.models.LegalHoldReason`; ``note`` is
    sealed under the customer's key. Setting it again replaces reason and note."""
    now = now or utcnow()
    reason = LegalHoldReason(reason)
    customer = customers_service.lock_customer(session, customer_id)
    customer.legal_hold, customer.legal_hold_reason = True, reason
    customer.legal_hold_note = _seal(envelope, customer, notes.LEGAL_HOLD, note)
    _save(session, customer, now)
    record_audit(
        session,
        by,
        AuditAction.DSR_LEGAL_HOLD_SET,
        customer.id,
        now,
        reason=str(reason),
    )
    return RightsResult(customer)


def clear_legal_hold(
    *,
    session: Session,
    customer_id: UUID,
    reason: str,
    by: Caller,
    now: datetime | None = None,
) -> RightsResult:
    """Lift the legal hold; ``reason`` (a :class:`~vault.dsr.models.LegalHoldRelease`) says why
    it no longer applies, and the hold's note goes with it."""
    now = now or utcnow()
    reason = LegalHoldRelease(reason)
    customer = customers_service.lock_customer(session, customer_id)
    changed = customer.legal_hold
    customer.legal_hold, customer.legal_hold_reason = False, None
    customer.legal_hold_note = None
    _save(session, customer, now)
    record_audit(
        session,
        by,
        AuditAction.DSR_LEGAL_HOLD_CLEARED,
        customer.id,
        now,
        reason=str(reason),
        changed=changed,
    )
    return RightsResult(customer, None, changed)
