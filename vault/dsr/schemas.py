"""The shapes of the DSR API: request bodies and answers of :mod:`vault.dsr.routes`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel
from pydantic import Field as PField

from vault.dsr.models import RequestKind, RequestStatus


class RequestCreate(BaseModel):
    customer_id: UUID
    kind: RequestKind
    received_at: AwareDatetime | None = PField(
        None, description="when the request reached the company (default: now)"
    )


class RequestExtend(BaseModel):
    months: int = PField(ge=1, le=2, description="further months; in total at most 2")
    reason: str | None = PField(
        None, max_length=500, description="required (Art. 12(3)): why the extension is needed"
    )


class RequestClose(BaseModel):
    status: RequestStatus = PField(description="completed | rejected")
    reason: str | None = PField(None, max_length=500, description="required for rejected")


class RequestPublic(BaseModel):
    id: UUID
    customer_id: UUID
    kind: str
    status: str
    received_at: datetime
    due_at: datetime
    extension_months: int
    extension_reason: str | None
    created_by: str
    handled_by: str | None
    closed_at: datetime | None
    close_reason: str | None
    overdue: bool


class RequestList(BaseModel):
    requests: list[RequestPublic]
    next_cursor: str | None


class LegalHoldSet(BaseModel):
    reason: str = PField(min_length=3, max_length=500, description="why erasure must wait")


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
    legal_hold_reason: str | None
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
