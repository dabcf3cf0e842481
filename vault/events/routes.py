"""Webhook subscriptions (scope ``webhooks:manage``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, status

from vault.auth.deps import WebhookManager
from vault.db import SessionDep
from vault.errors import Forbidden, InvalidRequest, responses
from vault.events import webhooks
from vault.events.errors import (
    DeliveryNotFound,
    EventTypeNotPermitted,
    WebhookDisabled,
    WebhookNotFound,
)
from vault.events.models import DeliveryStatus
from vault.events.schemas import (
    DeliveryList,
    RedeliverRequest,
    RedeliverResult,
    WebhookCreate,
    WebhookList,
    WebhookPublic,
    WebhookWithSecret,
)
from vault.events.urls import (
    WebhookHostUnresolvable,
    WebhookPortForbidden,
    WebhookUrlForbidden,
    WebhookUrlInvalid,
)
from vault.http import page_size
from vault.runtime import RuntimeDep

router = APIRouter(tags=["webhooks"])


@router.post(
    "/v1/webhooks",
    operation_id="create_webhook",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    responses=responses(
        Forbidden,
        EventTypeNotPermitted,
        WebhookUrlInvalid,
        WebhookPortForbidden,
        WebhookUrlForbidden,
        WebhookHostUnresolvable,
        InvalidRequest,
    ),
)
def create_webhook(
    request: Request,
    body: WebhookCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: WebhookManager,
) -> WebhookWithSecret:
    """Subscribe a URL to event types; the answer carries the signing secret, shown only now.

    Only event types the token's own scopes read (consent.* needs consent:read; customer.updated
    customers:write or data:read; customer.restricted, .objected, .erased data:read or
    dsr:execute; data:read counts with a registered purpose): otherwise 403
    `event_type_not_permitted`."""
    webhook, secret = webhooks.create_webhook(
        session=session,
        envelope=runtime.envelope,
        settings=runtime.settings,
        url=body.url,
        events=[e.value for e in body.events],
        by=principal.caller,
        subscriber=principal,
    )
    return webhooks.with_secret(webhook, secret)


@router.get(
    "/v1/webhooks",
    operation_id="list_webhooks",
    response_model=WebhookList,
    responses=responses(),
)
def list_webhooks(
    session: SessionDep,
    principal: WebhookManager,
    limit: Annotated[int, page_size(webhooks.PAGE_MAX)] = webhooks.PAGE_MAX,
) -> WebhookList:
    """The calling client's subscriptions, active and disabled, oldest first (never their
    secrets). A client sees and manages only the subscriptions it created."""
    rows = webhooks.list_webhooks(session=session, limit=limit, by=principal.caller)
    return WebhookList(webhooks=[webhooks.public(w) for w in rows])


@router.get(
    "/v1/webhooks/{webhook_id}",
    operation_id="get_webhook",
    response_model=WebhookPublic,
    responses=responses(WebhookNotFound),
)
def get_webhook(webhook_id: UUID, session: SessionDep, principal: WebhookManager) -> WebhookPublic:
    """One subscription."""
    return webhooks.public(
        webhooks.get_webhook(session=session, webhook_id=webhook_id, by=principal.caller)
    )


@router.post(
    "/v1/webhooks/{webhook_id}/disable",
    operation_id="disable_webhook",
    response_model=WebhookPublic,
    responses=responses(WebhookNotFound),
)
def disable_webhook(
    request: Request, webhook_id: UUID, session: SessionDep, principal: WebhookManager
) -> WebhookPublic:
    """Stop a subscription; its open deliveries are dead-lettered."""
    webhook = webhooks.disable_webhook(session=session, webhook_id=webhook_id, by=principal.caller)
    return webhooks.public(webhook)


@router.post(
    "/v1/webhooks/{webhook_id}/rotate-secret",
    operation_id="rotate_webhook_secret",
    response_model=WebhookWithSecret,
    responses=responses(WebhookNotFound, WebhookDisabled),
)
def rotate_webhook_secret(
    request: Request,
    webhook_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: WebhookManager,
) -> WebhookWithSecret:
    """A new signing secret; deliveries carry signatures under the old one too for 24 hours."""
    webhook, secret = webhooks.rotate_secret(
        session=session,
        envelope=runtime.envelope,
        webhook_id=webhook_id,
        by=principal.caller,
    )
    return webhooks.with_secret(webhook, secret)


@router.post(
    "/v1/webhooks/{webhook_id}/redeliver",
    operation_id="redeliver_webhook",
    response_model=RedeliverResult,
    responses=responses(WebhookNotFound, DeliveryNotFound, WebhookDisabled),
)
def redeliver_webhook(
    request: Request,
    webhook_id: UUID,
    session: SessionDep,
    principal: WebhookManager,
    body: RedeliverRequest | None = None,
) -> RedeliverResult:
    """Queue one event again (`event_id`), or else every dead-lettered delivery."""
    requeued = webhooks.redeliver(
        session=session,
        webhook_id=webhook_id,
        event_id=body.event_id if body else None,
        by=principal.caller,
    )
    return RedeliverResult(webhook_id=webhook_id, requeued=requeued)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    operation_id="list_webhook_deliveries",
    response_model=DeliveryList,
    responses=responses(WebhookNotFound),
)
def list_webhook_deliveries(
    webhook_id: UUID,
    session: SessionDep,
    principal: WebhookManager,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Annotated[int, page_size(webhooks.PAGE_MAX)] = 100,
) -> DeliveryList:
    """The subscription's deliveries, newest event first (state, attempts, last error)."""
    return DeliveryList(
        deliveries=webhooks.list_deliveries(
            session=session,
            webhook_id=webhook_id,
            status=status.value if status else None,
            limit=limit,
            by=principal.caller,
        )
    )
