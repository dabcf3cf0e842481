"""Tables of the customer domain: the customer row, its encrypted values, the blind index."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlmodel import Field, SQLModel

from vault.db import Bytes, UTCDateTime, utcnow


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    RESTRICTED = "restricted"  # GDPR Art. 18
    ERASED = "erased"


class Customer(SQLModel, table=True):
    id: UUID = Field(default_factory=uuid4, primary_key=True)
    status: str = Field(default=CustomerStatus.ACTIVE, max_length=16)
    # The customer's DEK wrapped under KEK ``kek_id``; NULL after erasure (crypto-shredding).
    dek_wrapped: bytes | None = Field(default=None, sa_type=Bytes)
    kek_id: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # GDPR Art. 21 objections: "direct_marketing" (Art. 21(2), absolute) and/or ids of
    # legitimate-interest purposes, space-separated. On the row so a read needs no extra query.
    objections: str = Field(default="", max_length=2000)
    # GDPR Art. 17(3): while set, erasure answers 409 with the reason (vault.dsr). Reasons are
    # codes (vault.dsr.models.LegalHoldReason, RestrictionReason); a note beside one is
    # encrypted under this customer's DEK (vault.dsr.notes) and nulled by erasure.
    legal_hold: bool = Field(default=False)
    legal_hold_reason: str | None = Field(default=None, max_length=500)  # a code (0010)
    legal_hold_note: bytes | None = Field(default=None, sa_type=Bytes)
    # GDPR Art. 18(1): the ground of the current restriction (status restricted), if given.
    restriction_reason: str | None = Field(default=None, max_length=32)
    restriction_note: bytes | None = Field(default=None, sa_type=Bytes)
    # The tombstone: who asked for the erasure (``erased_at`` says when).
    erased_by: str | None = Field(default=None, max_length=80)

    def __repr__(self) -> str:
        return f"Customer(id={self.id}, status={self.status}, ***)"

    @property
    def objection_set(self) -> frozenset[str]:
        return frozenset(self.objections.split())


class CustomerValue(SQLModel, table=True):
    """One encrypted attribute value; AAD binds the ciphertext to (customer_id, attribute)."""

    __tablename__ = "customer_value"

    customer_id: UUID = Field(foreign_key="customer.id", primary_key=True, ondelete="CASCADE")
    attribute: str = Field(primary_key=True, max_length=64)
    ciphertext: bytes = Field(sa_type=Bytes)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    def __repr__(self) -> str:
        return f"CustomerValue(customer_id={self.customer_id}, attribute={self.attribute}, ***)"


class BlindIndex(SQLModel, table=True):
    """HMAC-SHA256 of a normalised searchable value (or the external id) for equality lookup."""

    __tablename__ = "blind_index"

    attribute: str = Field(primary_key=True, max_length=64)
    digest: bytes = Field(primary_key=True, sa_type=Bytes)
    customer_id: UUID = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
