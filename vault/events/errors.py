"""Errors of the outbox and of the webhook subscriptions (the URL checks' errors live with the
checks, in :mod:`vault.events.urls`)."""

from __future__ import annotations

from vault.errors import Conflict, Forbidden, NotFound, VaultError


class InvalidEvent(VaultError):
    """A programming error in the emitting code (unknown type, payload not plain JSON)."""

    code = "invalid_event"
    status = 500
    default_detail = "An event could not be recorded."


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    default_detail = "No webhook subscription with this id."


class WebhookDisabled(Conflict):
    code = "webhook_disabled"
    default_detail = "This webhook subscription is disabled."


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"
    default_detail = "This event was not dispatched to this webhook subscription."


class EventTypeNotPermitted(Forbidden):
    """The client asked for events its own scopes could not read (docs/events.md)."""

    code = "event_type_not_permitted"
    default_detail = "The token's scopes do not cover these event types."

    def headers(self) -> dict[str, str] | None:
        return None
