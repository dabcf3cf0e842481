"""API shapes of the self-service domain (its one JSON route mails magic links)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel


class SelfserviceLinkPublic(BaseModel):
    """A magic link for the customer's e-mail: opens /me once, within ``expires_at``."""

    url: str
    expires_at: datetime


class UnsubscribePublic(BaseModel):
    """The answer to a one-click unsubscribe (RFC 8058): the consent is withdrawn (now, or it
    already was)."""

    status: Literal["unsubscribed"] = "unsubscribed"


class SelfserviceLinkMailed(BaseModel):
    """A magic link is on its way to the customer's stored e-mail address (never shown here):
    ``mail_id`` names the mail (its receipt, ``vault mail show``); the link opens /me once,
    within ``expires_at``."""

    mail_id: UUID
    expires_at: datetime
