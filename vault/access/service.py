"""Consent-gated reads: the single read and the audience export.

Both ask :func:`vault.policy.decision.decide` and write an audit event for every release and
every denial in the same transaction as the read, so nothing is answered whose evidence is not
committed. The audience export decides in SQL first (only active customers with a counting
consent state and no objection are fetched) and by the same decision function second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from sqlmodel import Session

from vault.access import store
from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.auth.service import Principal
from vault.consent import rules as consent_rules
from vault.crypto import unsubscribe
from vault.crypto.envelope import Envelope
from vault.customers.schemas import CustomerStatus
from vault.db import reader, transaction
from vault.errors import CustomerErased, InvalidRequest, UnknownAttribute
from vault.policy import Policy, Purpose
from vault.policy.decision import (
    DIRECT_MARKETING,
    NO_FILTERS,
    ContactFacts,
    Decision,
    decide,
    decide_contact,
)
from vault.policy.errors import UnknownPurpose
from vault.policy.models import ContactChannel, LegalBasis
from vault.policy.values import reduce
from vault.preferences import store as preferences_store
from vault.preferences.store import ContactFilter

READ_ACTION = AuditAction.DATA_READ
EXPORT_ACTION = AuditAction.DATA_EXPORT


@dataclass(frozen=True, slots=True)
class ContactAsked:
    """What a read or export is for as a contact: the channel (None: a read for a purpose with
    several that names none) and the topic. Checked by
    :func:`vault.preferences.service.contact_of`; only for purposes with contact channels."""

    contact_channel: str | None = None
    topic: str | None = None


def decide_with_preferences(
    *,
    purpose: Purpose,
    decision: Decision,
    contact: ContactAsked | None,
    facts: ContactFacts,
    now: datetime,
) -> Decision:
    """The one place where the customer's own filters join the access decision (every door:
    the single read, the audience export): once :func:`decide` allows, a purpose that contacts
    the customer is asked :func:`vault.policy.decision.decide_contact` too."""
    if not decision.allowed or contact is None or not purpose.contact_channels:
        return decision
    verdict = decide_contact(
        purpose=purpose,
        facts=facts,
        contact_channel=contact.contact_channel,
        topic=contact.topic,
        now=now,
    )
    if verdict.allowed:
        return decision
    return Decision(False, verdict.reason, ())


@dataclass(frozen=True)
class ReadResult:
    decision: Decision
    attributes: dict[str, Any] = field(default_factory=dict)


def get_purpose(policy: Policy, purpose_id: str | None) -> Purpose:
    if not purpose_id:
        raise UnknownPurpose("The query parameter 'purpose' is required.", code="purpose_required")
    purpose = policy.purposes.get(purpose_id)
    if purpose is None:
        raise UnknownPurpose("No such purpose.")  # the id is client input: not echoed
    return purpose


def parse_attribute_list(policy: Policy, text: str | None) -> list[str] | None:
    """The names in ``?attributes=``, each one the policy defines.

    Names are client input: an unknown one is refused here, unechoed, so that only policy
    names reach the decision, the audit event and the denial body."""
    if text is None:
        return None
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names or len(names) > 100:
        raise InvalidRequest(
            "'attributes' must be a comma-separated list of 1 to 100 names.",
            code="invalid_attribute_list",
        )
    if any(n not in policy.attributes for n in names):
        raise UnknownAttribute("'attributes' names an attribute the policy does not define.")
    return names


def _released_values(
    purpose: Purpose, names: Sequence[str], plain: dict[str, Any]
) -> dict[str, Any]:
    return {n: reduce(plain[n], purpose.reduce.get(n)) for n in names if n in plain}


def read(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    principal: Principal,
    customer_id: UUID,
    purpose: Purpose,
    requested: Sequence[str] | None,
    now: datetime,
    contact: ContactAsked | None = None,
) -> ReadResult:
    """Decide, decrypt only what may be released, reduce, and audit — allowed or not.
    ``contact`` (default: none named) brings in the customer's own filters for a purpose with
    contact channels."""
    contact = contact or ContactAsked()
    conn = session.connection()
    customer = store.customer_for_purpose(conn, customer_id, purpose.id)
    if customer is None:
        decision = Decision(False, "customer_not_found")
    else:
        state = customer.state if purpose.legal_basis is LegalBasis.CONSENT else None
        decision = decide(
            purpose=purpose,
            client_purposes=principal.purposes,
            customer_status=customer.status,
            objections=customer.objections,
            consent_status=consent_rules.effective_status(state, purpose, now),
            requested=requested,
        )
        if decision.allowed and purpose.contact_channels:
            decision = decide_with_preferences(
                purpose=purpose,
                decision=decision,
                contact=contact,
                facts=preferences_store.contact_facts_of_one(session, customer_id, purpose),
                now=now,
            )
    released: dict[str, Any] = {}
    if decision.allowed:
        if customer.dek_wrapped is None or customer.kek_id is None:
            raise CustomerErased()
        status_now, blobs = store.ciphertexts(conn, customer_id)
        if status_now != CustomerStatus.ACTIVE:  # erased or restricted since the first read
            decision = Decision(
                False, "customer_erased" if status_now == CustomerStatus.ERASED else "restricted"
            )
        else:
            key = envelope.unwrap(customer_id, customer.dek_wrapped, customer.kek_id)
            plain = {
                n: orjson.loads(key.decrypt(n, blobs[n])) for n in decision.attributes if n in blobs
            }
            released = _released_values(purpose, decision.attributes, plain)
    audit_record.record(
        session=session,
        by=principal.caller,
        action=READ_ACTION,
        outcome="allowed" if decision.allowed else "denied",
        customer_id=customer_id if customer is not None else None,
        purpose=purpose.id,
        attributes=sorted(released) if decision.allowed else list(decision.attributes),
        reason=decision.reason,
        details=None if customer is not None else {"unknown_customer_id": str(customer_id)},
        now=now,
    )
    return ReadResult(decision, released)


def decide_export(
    *, principal: Principal, purpose: Purpose, requested: Sequence[str] | None
) -> Decision:
    """What can be checked once for the whole export: client registration and attributes."""
    if purpose.id not in principal.purposes:
        return Decision(False, "purpose_not_permitted_for_client")
    if requested is not None:
        refused = tuple(a for a in requested if a not in purpose.attributes)
        if refused:
            return Decision(False, "attribute_not_permitted", refused)
    return Decision(True, None, tuple(requested or purpose.attributes))


def _prefilter(
    purpose: Purpose, now: datetime, contact: ContactAsked | None = None
) -> store.AudienceFilter:
    """SQL form of the decision: active customers, no objection, a counting consent state,
    and for a contact none of the customer's own filters against it."""
    contact_filter = (
        ContactFilter(purpose, contact.contact_channel, contact.topic, now)
        if contact is not None and purpose.contact_channels
        else None
    )
    if purpose.legal_basis is not LegalBasis.CONSENT:
        return store.AudienceFilter(
            purpose=purpose.id,
            consent=False,
            exclude_objection=DIRECT_MARKETING if purpose.direct_marketing else None,
            contact=contact_filter,
        )
    return store.AudienceFilter(
        purpose=purpose.id,
        consent=True,
        counting=("confirmed",) if purpose.double_opt_in else ("granted", "confirmed"),
        min_version=purpose.version if purpose.reconsent else None,
        granted_after=(
            now - timedelta(days=purpose.consent_ttl_days) if purpose.consent_ttl_days else None
        ),
        exclude_objection=DIRECT_MARKETING if purpose.direct_marketing else None,
        contact=contact_filter,
    )


UNSUBSCRIBE_PATH = "/unsubscribe/"


def unsubscribe_link_maker(
    *, envelope: Envelope, public_url: str, purpose: Purpose
) -> Callable[[UUID], str] | None:
    """``customer id -> {public_url}/unsubscribe/{token}`` for a purpose that contacts by
    e-mail (``contact_channels`` has ``email``), else None. The token is made, not stored
    (:mod:`vault.crypto.unsubscribe`): no row, no lookup, a few microseconds a customer."""
    if ContactChannel.EMAIL not in purpose.contact_channels:
        return None
    make = unsubscribe.for_index_key(envelope.keys.index_key).maker(purpose.id)
    base = public_url.rstrip("/") + UNSUBSCRIBE_PATH
    return lambda customer_id: base + make(customer_id)


def audience(
    *,
    engine: Any,
    envelope: Envelope,
    policy: Policy,
    principal: Principal,
    purpose: Purpose,
    requested: Sequence[str] | None,
    now: datetime,
    public_url: str | None = None,
    batch_size: int = 2000,
    contact: ContactAsked | None = None,
) -> Iterator[bytes]:
    """NDJSON lines ``{"customer_id","attributes"}`` for every customer the purpose may use now,
    with ``unsubscribe_url`` (RFC 8058 one-click) when the purpose contacts by e-mail and
    ``public_url`` is given.

    Works in batches with its own session: each batch's audit events are committed before the
    batch is yielded, and memory holds one batch at a time however large the audience.

    ``contact`` (the export route always passes one for a purpose with contact channels)
    leaves out customers whose own filters refuse this contact: in SQL first, by
    :func:`decide_with_preferences` second."""
    names = tuple(requested) if requested is not None else tuple(purpose.attributes)
    unsubscribe_url = (
        unsubscribe_link_maker(envelope=envelope, public_url=public_url, purpose=purpose)
        if public_url is not None
        else None
    )
    sql_filter = _prefilter(purpose, now, contact)
    last: UUID | None = None
    while True:
        # Read and decrypt in a read-only transaction (on SQLite it takes no write lock, so
        # single reads are not held up for a whole page), then commit the page's audit events
        # in a short write transaction, then send the page.
        with transaction(reader(engine)) as session:
            conn = session.connection()
            rows = store.audience_batch(conn, sql_filter, last, batch_size)
            if not rows:
                return
            last = rows[-1][0]
            allowed: list[tuple[UUID, bytes, str]] = []
            facts = (
                preferences_store.contact_facts(session, [r[0] for r in rows], purpose)
                if sql_filter.contact is not None
                else {}
            )
            for cid, c in rows:
                decision = decide(
                    purpose=purpose,
                    client_purposes=principal.purposes,
                    customer_status=c.status,
                    objections=c.objections,
                    consent_status=consent_rules.effective_status(c.state, purpose, now),
                    requested=names,
                )
                decision = decide_with_preferences(
                    purpose=purpose,
                    decision=decision,
                    contact=contact,
                    facts=facts.get(cid, NO_FILTERS),
                    now=now,
                )
                if decision.allowed and c.dek_wrapped is not None and c.kek_id is not None:
                    allowed.append((cid, c.dek_wrapped, c.kek_id))
            statuses, values = store.ciphertexts_of(conn, [a[0] for a in allowed], names)
            lines: list[bytes] = []
            events: list[dict[str, Any]] = []
            for cid, wrapped, kek_id in allowed:
                if statuses.get(cid) != CustomerStatus.ACTIVE:  # erased or restricted meanwhile
                    continue
                key = envelope.unwrap(cid, wrapped, kek_id)
                plain = {
                    attr: orjson.loads(key.decrypt(attr, blob))
                    for attr, blob in values.get(cid, {}).items()
                }
                released = _released_values(purpose, names, plain)
                row: dict[str, Any] = {"customer_id": str(cid), "attributes": released}
                if unsubscribe_url is not None:
                    row["unsubscribe_url"] = unsubscribe_url(cid)
                lines.append(orjson.dumps(row) + b"\n")
                events.append(
                    {
                        "actor": principal.actor,
                        "action": EXPORT_ACTION,
                        "outcome": "allowed",
                        "customer_id": cid,
                        "purpose": purpose.id,
                        "attributes": sorted(released),
                        "request_id": principal.request_id,
                        "now": now,
                    }
                )
        if events:
            with transaction(engine) as session:
                audit_record.record_many(session=session, events=events)
        if lines:
            yield b"".join(lines)
        if len(rows) < batch_size:
            return
