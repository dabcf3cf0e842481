"""The consent dossier: everything that proves one customer's consents, per purpose, signed.

For every purpose (each consent-based purpose of the policy, and any other the ledger names):
each statement with its times, channel, method, actor, notice version and hash, evidence and
signed receipt; for a double opt-in confirmation the confirmation mail's receipt (Message-ID,
template and version, SHA-256 of the exact bytes sent, when the SMTP server accepted them) next
to the confirmation evidence; and when the consent was last used (the last allowed release for
that purpose in the audit log). BGH I ZR 164/09 wants each e-mail consent documented completely
and printably.

Nothing here is decrypted: the ledger, the mail receipts and the audit log hold ids, times,
hashes and typed evidence only, so the dossier of an erased customer still answers and still
proves the consents, pseudonymously (``customer.status`` says ``erased``).

The answer is ``{"dossier": {...}, "jws": "<compact JWS>"}``: the JWS (ES256, header
``typ: consent-dossier+jwt`` and the vault's ``kid``, key at ``/.well-known/jwks.json``) signs
the dossier object itself as its payload, so anyone with the JWKS can verify it with any JOSE
library and read the verified payload instead of trusting ``dossier``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlmodel import Session

from vault.audit import query as audit_query
from vault.audit.actions import AuditAction
from vault.audit.record import actor_text
from vault.consent.models import ConsentEvent, ConsentStatus
from vault.consent.receipts import notice_hash
from vault.consent.store import effective_states
from vault.crypto.signing import Signer
from vault.customers import service as customers_service
from vault.customers.schemas import CustomerStatus
from vault.mail import receipts as mail_receipts
from vault.policy import Policy, Purpose
from vault.preferences import service as preferences_service

FORMAT = "consent-vault/consent-dossier/v1"
TYP = "consent-dossier+jwt"
# Templates of double opt-in confirmation mails: their receipts are listed for the customer.
DOI_TEMPLATES = ("doi_confirmation",)
# Audit actions that release data for a purpose: the last one is "last used".
USE_ACTIONS = (AuditAction.DATA_READ, AuditAction.DATA_EXPORT, AuditAction.CONTACT_RECORDED)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _mail_id(evidence: dict[str, Any]) -> UUID | None:
    """The ``mail_id`` a confirmation's evidence names, if it is a UUID (anything else is
    shown in the evidence as stored, and looked up nowhere)."""
    value = evidence.get("mail_id")
    if not isinstance(value, str):
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def _receipt_public(r: Any) -> dict[str, Any]:
    return {
        "mail_id": str(r.mail_id),
        "template": r.template,
        "template_version": r.template_version,
        "language": r.language,
        "message_id": r.message_id,
        "sha256": r.sha256,
        "transport": r.transport,
        "accepted_at": _iso(r.accepted_at),
    }


def _notice(purpose: Purpose | None, event: ConsentEvent) -> dict[str, str] | None:
    """The wording the customer was shown, when the current policy still has it: its hash
    equals the statement's. Policy files are not versioned in the database, so an older wording
    is proven by its hash alone."""
    if purpose is None or purpose.version != event.purpose_version:
        return None
    if notice_hash(purpose, event.language) != event.notice_hash:
        return None
    lang = event.language if event.language in ("de", "en") else "de"
    return {
        "title": getattr(purpose.title, lang) or "",
        "description": getattr(purpose.description, lang) or "",
    }


def _statement(
    purpose: Purpose | None, event: ConsentEvent, mails: dict[UUID, Any]
) -> dict[str, Any]:
    mail_id = _mail_id(event.evidence) if event.status == ConsentStatus.CONFIRMED else None
    confirmation_mail = None
    if mail_id is not None:
        receipt = mails.get(mail_id)
        confirmation_mail = {
            "mail_id": str(mail_id),
            "receipt": _receipt_public(receipt) if receipt is not None else None,
        }
    return {
        "id": str(event.id),
        "status": event.status,
        "occurred_at": _iso(event.occurred_at),
        "recorded_at": _iso(event.recorded_at),
        "channel": event.channel,
        "method": event.method,
        "actor": event.actor,
        "recorded_by": event.recorded_by,
        "language": event.language,
        "purpose_version": event.purpose_version,
        "notice_hash": event.notice_hash,
        "notice": _notice(purpose, event),
        "evidence": event.evidence,
        "receipt": event.receipt,
        "confirmation_mail": confirmation_mail,
    }


def _ledger(session: Session, customer_id: UUID) -> list[ConsentEvent]:
    # The whole ledger of one customer (index customer_id, purpose, occurred_at): a dossier
    # that left statements out would prove nothing.
    return list(
        session.execute(
            select(ConsentEvent)
            .where(ConsentEvent.customer_id == customer_id)
            .order_by(ConsentEvent.purpose, ConsentEvent.occurred_at, ConsentEvent.seq)
        ).scalars()
    )


def _purpose_ids(policy: Policy, seen: Iterable[str]) -> list[str]:
    ids = [p.id for p in policy.purposes.values() if p.needs_consent]
    return ids + sorted(set(seen) - set(ids))


def build(
    *, session: Session, policy: Policy, customer_id: UUID, issuer: str, now: datetime
) -> dict[str, Any]:
    """The dossier of one customer (404 ``customer_not_found`` for an unknown id), erased or
    not. Reads only; decrypts nothing."""
    customer = customers_service.get_customer(session, customer_id, allow_erased=True)
    erased = customer.status == CustomerStatus.ERASED
    events = _ledger(session, customer_id)
    confirmations = (e for e in events if e.status == ConsentStatus.CONFIRMED)
    mail_ids = {m for e in confirmations if (m := _mail_id(e.evidence)) is not None}
    mails = mail_receipts.for_mails(session, mail_ids)
    doi_mails = [
        _receipt_public(r)
        for r in mail_receipts.for_customer(session, customer_id)
        if r.template in DOI_TEMPLATES
    ]
    used = audit_query.last_releases(session, customer_id, USE_ACTIONS)
    states = (
        {}
        if erased
        else effective_states(session=session, policy=policy, customer_id=customer_id, now=now)
    )
    by_purpose: dict[str, list[ConsentEvent]] = {}
    for e in events:
        by_purpose.setdefault(e.purpose, []).append(e)

    purposes = []
    for pid in _purpose_ids(policy, by_purpose):
        purpose = policy.purposes.get(pid)
        state = states.get(pid)
        last = used.get(pid)
        purposes.append(
            {
                "purpose": pid,
                "title": purpose.title.model_dump() if purpose is not None else None,
                "legal_basis": purpose.legal_basis.value if purpose is not None else None,
                "version": purpose.version if purpose is not None else None,
                "double_opt_in": purpose.double_opt_in if purpose is not None else None,
                "status": state.status if state is not None else None,
                "last_used": (
                    {
                        "at": _iso(last.occurred_at),
                        "action": last.action,
                        "actor": actor_text(last.actor_type, last.actor_id),
                    }
                    if last is not None
                    else None
                ),
                "statements": [_statement(purpose, e, mails) for e in by_purpose.get(pid, [])],
            }
        )
    return {
        "format": FORMAT,
        "iss": issuer,
        "iat": int(now.timestamp()),
        "generated_at": _iso(now),
        "controller": dict(policy.controller),
        "customer": {
            "id": str(customer.id),
            "status": str(customer.status),
            "erased_at": _iso(customer.erased_at) if erased else None,
        },
        "purposes": purposes,
        "doi_mails": doi_mails,
        # the customer's own filters: how they chose to be contacted, with the same evidence
        "preferences": preferences_service.record_of(
            session=session, policy=policy, customer_id=customer_id, now=now, erased=erased
        ),
    }


def sign(signer: Signer, dossier: dict[str, Any]) -> str:
    """The compact JWS whose payload is ``dossier``."""
    return signer.sign_payload(dossier, typ=TYP)
