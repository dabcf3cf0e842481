"""The export (GDPR Art. 15 / Art. 20): every attribute decrypted with its labels, consent state
and full consent history, purposes with legal basis, recipients, retention, the access history
from the audit log, and the customer's tracked requests. :func:`export` audits it as
``dsr.access`` / ``dsr.portability``; :func:`build_export` only reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel import Session

from vault.audit import query as audit_query
from vault.audit.query import EventFilter
from vault.consent import rules as consent_rules
from vault.consent import schemas as consent_schemas
from vault.consent import store as consent_store
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.customers import store as customers_store
from vault.customers.schemas import Customer
from vault.db import utcnow
from vault.dsr import notes
from vault.dsr.models import RequestKind
from vault.dsr.requests import complete_request, list_requests, record_audit, request_public
from vault.errors import InvalidRequest
from vault.policy import LegalBasis, Policy
from vault.policy.decision import DIRECT_MARKETING
from vault.policy.facts import effective_retention, recipients_public
from vault.preferences import service as preferences_service
from vault.provenance import Caller

EXPORT_FORMAT = "consent-vault/export/v1"


def _access_history(session: Session, customer_id: UUID) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    flt = EventFilter(customer_id=customer_id)
    while True:
        events, cursor = audit_query.list_events(
            session=session, filters=flt, cursor=cursor, limit=audit_query.PAGE_MAX
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


def _attributes(
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer: Customer,
    retention: dict[str, tuple[int | None, str]],
) -> list[dict[str, Any]]:
    """Every stored attribute decrypted, policy attributes first, with labels and retention."""
    values = customers_service.decrypt_values(session=session, envelope=envelope, customer=customer)
    updated = customers_store.value_dates(session, customer.id)
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
    return attributes


def _consent_history(
    session: Session, customer_id: UUID, include_receipts: bool
) -> list[dict[str, Any]]:
    history = []
    for event in consent_store.events(session, customer_id, limit=10**9):
        item = consent_schemas.event_public(event)
        if include_receipts:
            item["receipt"] = event.receipt
        history.append(item)
    return history


def _purposes(
    policy: Policy,
    states: dict[str, consent_rules.EffectiveConsent],
    objections: frozenset[str],
) -> list[dict[str, Any]]:
    """Every purpose with its legal basis, the customer's consent and whether it is objected to."""
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
    return purposes


def _requests(
    session: Session, envelope: Envelope, customer_id: UUID, now: datetime
) -> list[dict[str, Any]]:
    """The customer's tracked requests as JSON values (ISO times, string ids), notes opened."""
    requests = list_requests(session=session, customer_id=customer_id, now=now, limit=1000)
    reader = notes.NoteReader(session, envelope)
    return [
        {
            k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v)
            for k, v in request_public(r, reader, now).items()
        }
        for r in requests
    ]


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
    retention = effective_retention(policy)
    attributes = _attributes(session, envelope, policy, customer, retention)
    states = consent_store.effective_states(
        session=session, policy=policy, customer_id=customer.id, now=now
    )
    history = _consent_history(session, customer.id, include_receipts)
    objections = customer.objection_set
    purposes = _purposes(policy, states, objections)
    requests = _requests(session, envelope, customer.id, now)
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
            "legal_hold_reason": customer.legal_hold_reason,
            "legal_hold_note": notes.open_note(
                envelope, customer, notes.LEGAL_HOLD, customer.legal_hold_note
            ),
            "restriction_reason": customer.restriction_reason,
            "restriction_note": notes.open_note(
                envelope, customer, notes.RESTRICTION, customer.restriction_note
            ),
        },
        "attributes": attributes,
        "consents": [consent_schemas.state_public(s) for s in states.values()],
        "consent_history": history,
        "preferences": preferences_service.record_of(
            session=session, policy=policy, customer_id=customer.id, now=now
        ),
        "purposes": purposes,
        "recipients": recipients_public(policy),
        "retention": [
            {"attribute": name, "retention_days": days, "rule": rule}
            for name, (days, rule) in retention.items()
        ],
        "access_history": _access_history(session, customer.id),
        "requests": requests,
    }


def export(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer_id: UUID,
    by: Caller,
    kind: str = RequestKind.ACCESS,
    include_receipts: bool = False,
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
    complete_request(session=session, customer_id=customer_id, kind=kind, by=by, now=now)
    record_audit(
        session,
        by,
        f"dsr.{kind}",
        customer_id,
        now,
        attributes=[a["name"] for a in document["attributes"]],
        consent_events=len(document["consent_history"]),
        access_events=len(document["access_history"]),
    )
    return document
