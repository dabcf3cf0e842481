"""API shapes of the webhook subscriptions and their deliveries."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel
from pydantic import Field as PField

from vault.events.outbox import EventType


class WebhookCreate(BaseModel):
    url: str = PField(min_length=1, max_length=2000, examples=["https://newsletter.example/hook"])
    events: list[EventType] = PField(min_length=1, max_length=len(EventType))


class WebhookPublic(BaseModel):
    id: UUID
    url: str
    events: list[str]
    status: str
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None


class WebhookWithSecret(WebhookPublic):
    """Only the answers to create and rotate carry the secret; it is never shown again."""

    secret: str


class WebhookList(BaseModel):
    webhooks: list[WebhookPublic]


class RedeliverRequest(BaseModel):
    event_id: UUID | None = PField(
        None, description="one event (any state); without it every dead-lettered delivery"
    )


class RedeliverResult(BaseModel):
    webhook_id: UUID
    requeued: int


class DeliveryPublic(BaseModel):
    event_id: UUID
    type: str
    customer_id: UUID | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryPublic]
