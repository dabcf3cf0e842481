"""The shapes of the DSR API: request bodies and answers of :mod:`vault.dsr.routes`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField

from vault.db import Instant
from vault.dsr.models import (
    CompletionReason,
    ExtensionReason,
    LegalHoldReason,
    LegalHoldRelease,
    RejectionReason,
    RequestKind,
    RequestStatus,
    RestrictionReason,
)
from vault.dsr.notes import MAX_NOTE, NOTE_PATTERN


class RequestCreate(BaseModel):
    customer_id: UUID
    kind: RequestKind
    received_at: Instant | None = PField(
        None, description="when the request reached the company (default: now)"
    )


def _note(what: str) -> Any:
    return PField(
        None,
        max_length=MAX_NOTE,
        pattern=NOTE_PATTERN,
        description=f"optional free text {what}, kept encrypted under the customer's key "
        f"(gone with an erasure); at most {MAX_NOTE} characters, no control characters but "
        "newline and tab",
    )


class RequestExtend(BaseModel):
    months: int = PField(ge=1, le=2, description="further months; in total at most 2")
    reason: ExtensionReason | None = PField(
        None,
        description="required (Art. 12(3)): complexity | number_of_requests",
    )
    note: str | None = _note("on the extension")


class RequestClose(BaseModel):
    status: RequestStatus = PField(description="completed | rejected")
    reason: RejectionReason | CompletionReason | None = PField(
        None,
        description="rejected (required): manifestly_unfounded | excessive | "
        "identity_not_verified | legal_exemption | other; completed (optional): fulfilled | "
        "no_data_held | withdrawn | other",
    )
    note: str | None = _note("on the closing")


_CODE = (
    "a reason code (docs/dsr.md); 'other' also stands for a free-text reason written before "
    "the codes (migration 0010 dropped the text)"
)
_SHOWN_NOTE = "the note, while the customer exists (null once erased)"


class RequestPublic(BaseModel):
    id: UUID
    customer_id: UUID
    kind: str
    status: str
    received_at: datetime
    due_at: datetime
    extension_months: int
    extension_reason: str | None = PField(description=_CODE)
    extension_note: str | None = PField(description=_SHOWN_NOTE)
    created_by: str
    handled_by: str | None
    closed_at: datetime | None
    close_reason: str | None = PField(description=_CODE)
    close_note: str | None = PField(description=_SHOWN_NOTE)
    overdue: bool


class RequestList(BaseModel):
    requests: list[RequestPublic]
    next_cursor: str | None


class LegalHoldSet(BaseModel):
    reason: LegalHoldReason = PField(
        description="why erasure must wait: tax_retention (§ 147 AO) | commercial_retention "
        "(§ 257 HGB) | litigation | authority_request | other"
    )
    note: str | None = _note("on the hold")


class LegalHoldClear(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a note here would have nowhere to go

    reason: LegalHoldRelease = PField(
        description="why the hold no longer applies: retention_period_ended | "
        "litigation_concluded | authority_request_closed | set_in_error | other"
    )


class RestrictionSet(BaseModel):
    reason: RestrictionReason | None = PField(
        None,
        description="the Art. 18(1) ground: accuracy_contested (a) | unlawful_processing (b) | "
        "legal_claims (c) | objection_pending (d)",
    )
    note: str | None = _note("on the restriction")


class ObjectionBody(BaseModel):
    scope: str = PField(
        max_length=64,
        description="'direct_marketing' (Art. 21(2), absolute) or the id of a "
        "legitimate-interest purpose (Art. 21(1))",
    )


class CustomerRights(BaseModel):
    """Where a customer stands: status, objections, legal hold, and the request just handled."""

    customer_id: UUID
    status: str
    objections: list[str]
    legal_hold: bool
    legal_hold_reason: str | None = PField(description=_CODE)
    legal_hold_note: str | None = PField(description=_SHOWN_NOTE)
    restriction_reason: str | None = PField(description="the Art. 18(1) ground, if given")
    restriction_note: str | None = PField(description=_SHOWN_NOTE)
    erased_at: datetime | None
    request_id: UUID | None = None


class DataExport(BaseModel):
    """Art. 15 / Art. 20 export (documented in docs/dsr.md)."""

    format: str
    generated_at: datetime
    controller: dict[str, str]
    customer: dict[str, Any]
    attributes: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    consent_history: list[dict[str, Any]]
    preferences: dict[str, Any] = PField(
        default_factory=dict,
        description="contact channels, topics, frequency and pause now (current), every "
        "change (changes) and the contacts sending tools reported (contacts)",
    )
    purposes: list[dict[str, Any]]
    recipients: list[dict[str, Any]]
    retention: list[dict[str, Any]]
    access_history: list[dict[str, Any]]
    requests: list[dict[str, Any]]


class RetentionReport(BaseModel):
    now: datetime
    values_deleted: int
    customers_affected: int
    by_attribute: dict[str, int]
    confirmations_deleted: int
    idempotency_deleted: int


class ErasureCertificatePublic(BaseModel):
    customer_id: UUID
    certificate: str = PField(
        description="compact JWS (typ erasure-certificate+jwt) under the key in "
        "/.well-known/jwks.json; verify with 'vault erasure verify'"
    )
    issued_at: datetime
