"""API shapes of the preference domain."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField

from vault.consent.schemas import Channel
from vault.db import Instant


class Preferences(BaseModel):
    """What the customer receives: defaults filled in, never more than the consent allows."""

    customer_id: UUID
    contact_channels: dict[str, bool] = PField(
        description="every contact channel some purpose uses; false: switched off everywhere"
    )
    topics: dict[str, dict[str, bool]] = PField(
        description="per purpose with topics: each topic on or off (all off while the purpose "
        "has no effective consent)"
    )
    frequency: dict[str, str] = PField(
        description="per purpose with frequencies: at most one contact per calendar window "
        "(weekly: ISO week, monthly, quarterly; Europe/Berlin)"
    )
    paused_until: str | None = PField(description="no contact by any purpose before this instant")


class PreferencesChange(BaseModel):
    """A partial change: keys left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    contact_channels: dict[str, bool] | None = PField(None, max_length=16)
    topics: dict[str, dict[str, bool]] | None = PField(None, max_length=64)
    frequency: dict[str, str] | None = PField(None, max_length=64)
    paused_until: Instant | None = PField(
        None, description="a future instant; null ends a pause (leave the key out to keep it)"
    )
    channel: Channel = PField(description="the touchpoint: web, app, store, call_center …")
    actor: str = PField(
        "customer",
        max_length=80,
        pattern=r"^(customer|staff:[A-Za-z0-9_.-]{1,64})$",
        description="who made the change: the customer, or staff:<id> on their behalf",
    )
    evidence: dict[str, Any] = PField(
        default_factory=dict,
        description="the consent evidence allowlist (ip, user_agent, staff_id, store_id …)",
    )

    def change(self) -> dict[str, Any]:
        """The change keys as sent (``paused_until`` only when it was sent, null included)."""
        keys = ("contact_channels", "topics", "frequency", "paused_until")
        return {k: getattr(self, k) for k in keys if k in self.model_fields_set}


class ContactReport(BaseModel):
    received: int
    accepted: int
    rejected: int
    errors: list[dict[str, Any]]
    errors_truncated: bool
