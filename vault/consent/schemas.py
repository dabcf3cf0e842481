"""The consent API's shapes, with the plain-JSON builders of the hot paths next to the model
each must equal (the write answer is kept as plain data for idempotent replay)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel
from pydantic import Field as PField

from vault.consent.models import Channel, ConsentEvent, EffectiveStatus
from vault.consent.rules import EffectiveConsent, effective
from vault.consent.service import RecordResult
from vault.consent.store import LedgerEvent
from vault.db import Instant
from vault.policy import Purpose


class ConsentWrite(BaseModel):
    """A consent statement sent by an app."""

    purpose: str = PField(max_length=64)
    status: str = PField(description="granted | withdrawn | refused")
    channel: Channel
    method: str = PField(
        "unspecified",
        max_length=64,
        pattern=r"^[a-z][a-z0-9_.-]*$",
        description="how it was collected, e.g. checkbox, paper_form, verbal, banner",
    )
    actor: str = PField(
        "customer",
        max_length=80,
        pattern=r"^(customer|staff:[A-Za-z0-9_.-]{1,64})$",
        description="who made the statement: the customer, or staff:<id> on their behalf",
    )
    language: str = PField("de", pattern=r"^(de|en)$")
    occurred_at: Instant | None = PField(
        None,
        description="when the customer decided (default: now); at most 2 minutes ahead, and at "
        "most VAULT_CONSENT_BACKDATE_DAYS (30) back unless late_import is true",
    )
    late_import: bool = PField(
        False,
        description="the statement was collected before the backdating horizon (e.g. migrated "
        "from another system); recorded in the audit event",
    )
    evidence: dict[str, Any] = PField(
        default_factory=dict,
        description="only these keys: ip (also ip_address, client_ip, remote_addr, remote_ip; "
        "truncated to /24 or /48 on write), user_agent (at most 512), gpc (bool), language, "
        "tc_string (IAB TCF, base64url, at most 2048), staff_id, store_id, script_version, "
        "mail_id (UUID); any other key is 422 evidence_key_not_allowed",
    )


class ConfirmRequest(BaseModel):
    token: str = PField(min_length=16, max_length=200)


class ConsentEventPublic(BaseModel):
    id: UUID
    seq: int
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


class ConsentEventWithReceipt(ConsentEventPublic):
    receipt: str


def event_public(event: LedgerEvent | ConsentEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "seq": event.seq,
        "customer_id": str(event.customer_id),
        "purpose": event.purpose,
        "purpose_version": event.purpose_version,
        "status": event.status,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "channel": event.channel,
        "method": event.method,
        "actor": event.actor,
        "recorded_by": event.recorded_by,
        "language": event.language,
        "notice_hash": event.notice_hash,
        "evidence": event.evidence,
    }


class ConsentStatePublic(BaseModel):
    """One purpose as a read sees it; ``status`` is effective (expiry and reconsent applied)."""

    purpose: str
    status: EffectiveStatus
    version: int | None
    updated_at: datetime | None
    expires_at: datetime | None


def state_public(consent: EffectiveConsent) -> dict[str, Any]:
    return {
        "purpose": consent.purpose,
        "status": consent.status,
        "version": consent.version,
        "updated_at": consent.updated_at.isoformat() if consent.updated_at else None,
        "expires_at": consent.expires_at.isoformat() if consent.expires_at else None,
    }


class ConsentWriteResult(BaseModel):
    event: ConsentEventPublic
    state: ConsentStatePublic
    receipt: str = PField(description="compact JWS (ES256), Kantara Consent Receipt v1.1 payload")
    applied: bool = PField(description="false for a late event older than the current decision")
    confirmation_token: str | None = PField(
        None,
        description="double opt-in, only for a client holding consent:confirm (it sends its own "
        "mail): send it to the customer; single use, 7 days. Otherwise null: the vault mails it",
    )
    confirmation_delivery: Literal["mail", "caller", "no_email"] | None = PField(
        None,
        description="double opt-in only: where the confirmation token went: mail (the vault "
        "mailed it to the stored e-mail address), caller (confirmation_token), no_email (no "
        "stored address: the grant stays pending, nothing was sent)",
    )


def write_result(result: RecordResult, purpose: Purpose, now: datetime) -> dict[str, Any]:
    """The JSON answer to a write (plain data, so it can be kept for idempotent replay)."""
    return {
        "event": event_public(result.event),
        "state": state_public(effective(result.state, purpose, now)),
        "receipt": result.receipt,
        "applied": result.applied,
        "confirmation_token": result.confirmation_token,
        "confirmation_delivery": result.confirmation_delivery,
    }


class CustomerConsents(BaseModel):
    customer_id: UUID
    purposes: list[ConsentStatePublic]


class ConsentHistory(BaseModel):
    customer_id: UUID
    events: list[ConsentEventWithReceipt]


# --- the consent dossier (vault/consent/dossier.py builds it as plain data) -----------------


class DossierMailReceipt(BaseModel):
    """What left the vault: ids, template, the SHA-256 of the exact bytes sent, when the SMTP
    server (or the development mail drop) accepted them. No contact data."""

    mail_id: UUID
    template: str
    template_version: str
    language: str
    message_id: str
    sha256: str
    transport: str = PField(description="smtp | drop")
    accepted_at: datetime


class DossierConfirmationMail(BaseModel):
    mail_id: UUID
    receipt: DossierMailReceipt | None = PField(description="null: no receipt (not sent)")


class DossierNotice(BaseModel):
    title: str
    description: str


class DossierStatement(BaseModel):
    id: UUID = PField(description="the event id, also the receipt id")
    status: str
    occurred_at: datetime
    recorded_at: datetime
    channel: str
    method: str
    actor: str
    recorded_by: str
    language: str
    purpose_version: int
    notice_hash: str
    notice: DossierNotice | None = PField(
        description="the wording shown, when the current policy still has the hashed text"
    )
    evidence: dict[str, Any]
    receipt: str = PField(description="the statement's signed consent receipt (compact JWS)")
    confirmation_mail: DossierConfirmationMail | None = PField(
        description="a double opt-in confirmation: the mail whose link was followed"
    )


class DossierLastUsed(BaseModel):
    at: datetime
    action: str
    actor: str


class DossierPurpose(BaseModel):
    purpose: str
    title: dict[str, str] | None
    legal_basis: str | None
    version: int | None
    double_opt_in: bool | None
    status: EffectiveStatus | None = PField(description="effective now; null after erasure")
    last_used: DossierLastUsed | None = PField(description="the last release for this purpose")
    statements: list[DossierStatement]


class DossierCustomer(BaseModel):
    id: UUID
    status: str
    erased_at: datetime | None


class DossierPreferences(BaseModel):
    current: dict[str, Any] | None
    changes: list[dict[str, Any]]
    contacts: list[dict[str, Any]]


class ConsentDossier(BaseModel):
    format: str
    iss: str
    iat: int
    generated_at: datetime
    controller: dict[str, str]
    customer: DossierCustomer
    purposes: list[DossierPurpose]
    doi_mails: list[DossierMailReceipt]
    preferences: DossierPreferences | None = PField(
        None,
        description="contact channels, topics, frequency and pause: the view now (null after "
        "erasure), every change with touchpoint, actor and evidence, the reported contacts",
    )


class SignedConsentDossier(BaseModel):
    """The dossier and a compact JWS (ES256, ``typ: consent-dossier+jwt``) whose payload is
    the same dossier: verify it with ``/.well-known/jwks.json``."""

    dossier: ConsentDossier
    jws: str
