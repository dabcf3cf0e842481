"""The data-subject request table and its kinds and statuses (the API shapes are in
:mod:`vault.dsr.schemas`).

``dsr_request`` tracks every request a data subject makes (Art. 12(3): answer within one month,
extendable by two further months with a reason). The tombstone and legal-hold fields live on
the ``customer`` row (migration 0006). ``erasure_certificate`` keeps the signed certificate of
every erasure (ids, counts and attribute names only: it outlives the erasure).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from vault.db import UTCDateTime, utcnow


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
    extension_reason: str | None = Field(default=None, max_length=500)
    created_by: str = Field(max_length=80)
    handled_by: str | None = Field(default=None, max_length=80)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    close_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


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
