"""Tables of the event outbox, the webhook subscriptions and their deliveries.

``outbox_event`` is written by :func:`vault.events.outbox.emit` in the transaction of the change
it describes. The worker *dispatches* each row once (one ``webhook_delivery`` per matching active
subscription, then ``dispatched_at`` is set) and *delivers* the deliveries. ``webhook`` holds the
subscriptions; their signing secrets only as AES-GCM ciphertext.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from vault.db import Bytes, UTCDateTime, utcnow

# BIGINT on PostgreSQL; INTEGER (the rowid alias, so autoincrementing) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not attempted yet
    FAILED = "failed"  # attempted, failed, a retry is scheduled
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after the configured number of attempts


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class OutboxEvent(SQLModel, table=True):
    """One event for downstream tools. Ids, purpose, status and time only: no attribute values."""

    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_event_dispatched_at_seq", "dispatched_at", "seq"),)

    # ``seq`` orders the events (per customer: the order of their transactions, which lock
    # the customer row); ``id`` is the ``webhook-id`` every delivery of the event carries.
    seq: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    id: UUID = Field(default_factory=uuid4, unique=True)
    type: str = Field(max_length=64)
    customer_id: UUID | None = Field(default=None, index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # set once the worker has made the deliveries of this event
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # optional de-duplication key (e.g. one consent.expired per grant)
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)


class Webhook(SQLModel, table=True):
    """A subscription: where to send which event types, and the secret to sign them with."""

    __tablename__ = "webhook"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    url: str = Field(max_length=2000)
    # event types, comma-separated
    events: str = Field(max_length=1000)
    status: str = Field(default=WebhookStatus.ACTIVE, max_length=16)
    # AES-GCM under a key derived from the KEK (see vault.events.secrets); never in clear
    secret_ciphertext: bytes = Field(sa_type=Bytes)
    # the secret before the last rotation, still signed with until previous_secret_until
    previous_secret_ciphertext: bytes | None = Field(default=None, sa_type=Bytes)
    previous_secret_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def __repr__(self) -> str:
        return f"Webhook(id={self.id}, status={self.status}, ***)"


class WebhookDelivery(SQLModel, table=True):
    """One event to one subscription: its state, attempts and the lease of the claiming worker."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_seq"),
        Index("ix_webhook_delivery_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_webhook_customer_seq", "webhook_id", "customer_id", "event_seq"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    webhook_id: UUID = Field(foreign_key="webhook.id", ondelete="CASCADE")
    event_seq: int = Field(sa_type=BigInteger, foreign_key="outbox_event.seq", index=True)
    customer_id: UUID | None = Field(default=None)
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, max_length=64)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=200)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
