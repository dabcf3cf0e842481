"""The data-subject request table, its kinds and statuses, and the coded reasons of every DSR
decision (the API shapes are in :mod:`vault.dsr.schemas`).

``dsr_request`` tracks every request a data subject makes (Art. 12(3): answer within one month,
extendable by two further months with a reason). The tombstone and legal-hold fields live on
the ``customer`` row (migration 0006). ``erasure_certificate`` keeps the signed certificate of
every erasure (ids, counts and attribute names only: it outlives the erasure).

Reasons are codes, one enum per kind of decision (docs/dsr.md, "Reasons"): they outlive erasure
(in these rows and the audit log), so they hold nothing personal. Free text goes into the
optional note beside each code, encrypted under the customer's key (:mod:`vault.dsr.notes`).
``other`` also names every reason written as free text before the codes (migration 0010: the
text was dropped).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from vault.db import Bytes, UTCDateTime, utcnow

# What every free-text reason written before the codes became (migration 0010).
MIGRATED_REASON = "other"


class RequestKind(StrEnum):
    ACCESS = "access"  # Art. 15
    RECTIFICATION = "rectification"  # Art. 16
    ERASURE = "erasure"  # Art. 17
    RESTRICTION = "restriction"  # Art. 18
    PORTABILITY = "portability"  # Art. 20
    OBJECTION = "objection"  # Art. 21


class RequestStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    REJECTED = "rejected"  # Art. 12(5): manifestly unfounded or excessive; reason required


class LegalHoldReason(StrEnum):
    """Why erasure must wait (Art. 17(3)(b)/(e))."""

    TAX_RETENTION = "tax_retention"  # § 147 AO: books and records, 6 to 10 years
    COMMERCIAL_RETENTION = "commercial_retention"  # § 257 HGB: commercial letters, 6 to 10 years
    LITIGATION = "litigation"  # legal claims, Art. 17(3)(e)
    AUTHORITY_REQUEST = "authority_request"  # a court, prosecutor or supervisory authority asked
    OTHER = "other"  # say why in the note


class LegalHoldRelease(StrEnum):
    """Why a legal hold no longer applies."""

    RETENTION_PERIOD_ENDED = "retention_period_ended"
    LITIGATION_CONCLUDED = "litigation_concluded"
    AUTHORITY_REQUEST_CLOSED = "authority_request_closed"
    SET_IN_ERROR = "set_in_error"
    OTHER = "other"


class RestrictionReason(StrEnum):
    """The ground of a restriction (Art. 18(1)(a) to (d))."""

    ACCURACY_CONTESTED = "accuracy_contested"  # (a) while the accuracy is verified
    UNLAWFUL_PROCESSING = "unlawful_processing"  # (b) the subject wants restriction, not erasure
    LEGAL_CLAIMS = "legal_claims"  # (c) no longer needed, but the subject needs it for claims
    OBJECTION_PENDING = "objection_pending"  # (d) while an Art. 21(1) objection is weighed


class ExtensionReason(StrEnum):
    """The only grounds Art. 12(3) allows for extending a deadline."""

    COMPLEXITY = "complexity"
    NUMBER_OF_REQUESTS = "number_of_requests"


class RejectionReason(StrEnum):
    """Why a request is refused (Art. 12(5), 12(6), 11(2), and exemptions such as Art. 17(3) or
    § 34 BDSG)."""

    MANIFESTLY_UNFOUNDED = "manifestly_unfounded"
    EXCESSIVE = "excessive"
    IDENTITY_NOT_VERIFIED = "identity_not_verified"
    LEGAL_EXEMPTION = "legal_exemption"
    OTHER = "other"


class CompletionReason(StrEnum):
    """How a request was completed, when it is worth saying (optional)."""

    FULFILLED = "fulfilled"
    NO_DATA_HELD = "no_data_held"
    WITHDRAWN = "withdrawn"  # the data subject withdrew the request
    OTHER = "other"


class DataSubjectRequest(SQLModel, table=True):
    """One request of a data subject and its deadline. ``due_at`` is the current deadline:
    ``received_at`` plus one calendar month, plus ``extension_months`` (at most 2)."""

    __tablename__ = "dsr_request"
    __table_args__ = (Index("ix_dsr_request_status_due_at", "status", "due_at"),)

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    customer_id: UUID = Field(foreign_key="customer.id", index=True)
    kind: str = Field(max_length=16)
    status: str = Field(default=RequestStatus.OPEN, max_length=16)
    received_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    extension_months: int = Field(default=0)
    extension_reason: str | None = Field(default=None, max_length=500)  # ExtensionReason
    extension_note: bytes | None = Field(default=None, sa_type=Bytes)  # vault.dsr.notes
    created_by: str = Field(max_length=80)
    handled_by: str | None = Field(default=None, max_length=80)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # RejectionReason, or CompletionReason
    close_reason: str | None = Field(default=None, max_length=500)
    close_note: bytes | None = Field(default=None, sa_type=Bytes)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    def __repr__(self) -> str:
        return f"DataSubjectRequest(id={self.id}, kind={self.kind}, status={self.status}, ***)"


class ErasureCertificate(SQLModel, table=True):
    """The signed certificate of one erasure (:mod:`vault.dsr.erasure`): a compact JWS
    (``typ`` ``erasure-certificate+jwt``) whose payload names the customer id, the time, what was
    destroyed (KEK id, counts, attribute names) and the DSR request. No PII."""

    __tablename__ = "erasure_certificate"

    id: UUID = Field(primary_key=True)
    customer_id: UUID = Field(foreign_key="customer.id", unique=True)
    issued_at: datetime = Field(sa_type=UTCDateTime)
    dsr_request_id: UUID | None = Field(default=None)
    certificate: str = Field(sa_type=Text)
