"""Tables of the customer's own filters (API shapes: :mod:`vault.preferences.schemas`).

``preference_event`` is the ledger of changes: append-only (database triggers, migration 0014),
one row per change with the touchpoint ``channel``, who spoke (``actor``), who wrote it
(``recorded_by``) and typed ``evidence``; ``change`` is the partial document as sent (contact
channels, topics, frequencies, pause). Like the consent ledger it holds no clear PII and stays
after erasure, as proof of what the customer chose.

``preference_state`` (the pause) and ``preference_choice`` (one row per explicit choice) are its
projection, written in the same transaction and read by the audience query; a choice never made
has no row and reads as the purpose's default. Erasure deletes the projection.

``contact`` holds the contacts a sending tool reported (``POST /v1/contacts``): what the
frequency caps count. Deleted with the customer's working copies on erasure.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import JSON, BigInteger, Column, Index, Integer
from sqlmodel import Field, SQLModel

from vault.db import UTCDateTime, utcnow


class ChoiceKind(StrEnum):
    CONTACT_CHANNEL = "contact_channel"  # purpose "": one switch per channel for every purpose
    TOPIC = "topic"  # value "on" | "off"
    FREQUENCY = "frequency"  # name "", value the frequency


class PreferenceEvent(SQLModel, table=True):
    """One change of a customer's filters. Never updated, never deleted."""

    __tablename__ = "preference_event"
    __table_args__ = (Index("ix_preference_event_customer_occurred", "customer_id", "occurred_at"),)

    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
    id: UUID = Field(default_factory=uuid4, unique=True)
    customer_id: UUID = Field(foreign_key="customer.id")
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    channel: str = Field(max_length=16)
    actor: str = Field(max_length=80)
    recorded_by: str = Field(max_length=80)
    change: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class PreferenceState(SQLModel, table=True):
    """Per customer: the pause, and the last event applied."""

    __tablename__ = "preference_state"

    customer_id: UUID = Field(foreign_key="customer.id", primary_key=True, ondelete="CASCADE")
    paused_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    event_id: UUID
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PreferenceChoice(SQLModel, table=True):
    """One explicit choice: a contact channel (purpose ""), a topic of a purpose, or the
    frequency of a purpose (name "")."""

    __tablename__ = "preference_choice"

    customer_id: UUID = Field(foreign_key="customer.id", primary_key=True, ondelete="CASCADE")
    purpose: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=16)
    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=16)


class Contact(SQLModel, table=True):
    """One contact a sending tool reported: what frequency caps count."""

    __tablename__ = "contact"
    __table_args__ = (
        Index("ix_contact_customer_purpose_sent", "customer_id", "purpose", "sent_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
    customer_id: UUID = Field(foreign_key="customer.id", ondelete="CASCADE")
    purpose: str = Field(max_length=64)
    contact_channel: str = Field(max_length=16)
    sent_at: datetime = Field(sa_type=UTCDateTime)
    client_id: str = Field(max_length=80)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
