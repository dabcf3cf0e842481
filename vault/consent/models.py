"""Tables of the consent ledger (its API shapes are in :mod:`vault.consent.schemas`).

``consent_event`` is the ledger: append-only, enforced by database triggers (migration 0002).
``consent_state`` is a projection of it, one row per (customer, purpose), written in the same
transaction as the event and rebuildable from the ledger at any time (``vault consent rebuild``).
``consent_confirmation`` holds the hashes of double opt-in tokens, ``consent_idempotency`` the
first answer to each ``Idempotency-Key``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel

from vault.db import Bytes, UTCDateTime, utcnow


class ConsentStatus(StrEnum):
    """Raw statuses as the ledger records them."""

    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    REFUSED = "refused"
    PENDING_CONFIRMATION = "pending_confirmation"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"


class EffectiveStatus(StrEnum):
    """What a read answers: the raw status judged against the purpose's current rules."""

    GRANTED = "granted"
    PENDING_CONFIRMATION = "pending_confirmation"
    WITHDRAWN = "withdrawn"
    REFUSED = "refused"
    EXPIRED = "expired"
    RECONSENT_REQUIRED = "reconsent_required"
    NONE = "none"


class Channel(StrEnum):
    WEB = "web"
    APP = "app"
    STORE = "store"
    CALL_CENTER = "call_center"
    EMAIL = "email"
    API = "api"
    SELFSERVICE = "selfservice"


class ConsentEvent(SQLModel, table=True):
    """One statement of a customer about one purpose. Never updated, never deleted."""

    __tablename__ = "consent_event"
    __table_args__ = (
        Index(
            "ix_consent_event_customer_purpose_occurred", "customer_id", "purpose", "occurred_at"
        ),
    )

    # ``seq`` orders events recorded at the same ``occurred_at``; ``id`` names the receipt.
    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
    id: UUID = Field(default_factory=uuid4, unique=True)
    customer_id: UUID = Field(foreign_key="customer.id")
    purpose: str = Field(max_length=64)
    purpose_version: int
    status: str = Field(max_length=32)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    channel: str = Field(max_length=16)
    method: str = Field(max_length=64)
    actor: str = Field(max_length=80)
    recorded_by: str = Field(max_length=80)
    language: str = Field(max_length=8)
    notice_hash: str = Field(max_length=64)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    receipt: str = Field(sa_type=Text)


class ConsentState(SQLModel, table=True):
    """The last decision per (customer, purpose): a projection of ``consent_event``."""

    __tablename__ = "consent_state"
    __table_args__ = (Index("ix_consent_state_purpose_status", "purpose", "status"),)

    customer_id: UUID = Field(foreign_key="customer.id", primary_key=True, ondelete="CASCADE")
    purpose: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=32)
    version: int
    # occurred_at of the grant the TTL counts from (for double opt-in: of the confirmation)
    granted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # occurred_at of the deciding event: older events arriving later do not override it
    decided_at: datetime = Field(sa_type=UTCDateTime)
    event_id: UUID
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConsentConfirmation(SQLModel, table=True):
    """A double opt-in token, stored as its SHA-256 only. Single use, 7 days. ``mail_id``
    names the confirmation mail the vault sent with it (``None``: the token was handed to an
    app holding ``consent:confirm``, which sends its own mail)."""

    __tablename__ = "consent_confirmation"

    token_hash: str = Field(primary_key=True, max_length=64)
    customer_id: UUID = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    purpose: str = Field(max_length=64)
    event_id: UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    mail_id: UUID | None = None

    def __repr__(self) -> str:
        return f"ConsentConfirmation(customer_id={self.customer_id}, purpose={self.purpose}, ***)"


class ConsentIdempotency(SQLModel, table=True):
    """The first answer to a write carrying an ``Idempotency-Key``, per calling client."""

    __tablename__ = "consent_idempotency"

    client: str = Field(primary_key=True, max_length=80)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    customer_id: UUID = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    response: dict[str, Any] = Field(sa_type=JSON)
    # the confirmation token of the first answer, encrypted under the customer's data key
    token_ciphertext: bytes | None = Field(default=None, sa_type=Bytes)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
