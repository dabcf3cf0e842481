"""API shapes of the audit log: events as auditors see them, pages, verification results."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel


class AuditEventPublic(BaseModel):
    """An audit event as auditors see it (``seq`` is null until the event is chained)."""

    seq: int | None
    occurred_at: datetime
    actor: str
    action: str
    outcome: str
    customer_id: UUID | None
    purpose: str | None
    attributes: list[str]
    reason: str | None
    request_id: str | None
    details: dict[str, Any] | None


class AuditEventPage(BaseModel):
    events: list[AuditEventPublic]
    next_cursor: str | None


class VerifyResult(BaseModel):
    ok: bool
    checked: int
    first_invalid_seq: int | None
