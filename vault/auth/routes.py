from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request, status

from vault.auth import service
from vault.auth.deps import Admin
from vault.auth.models import ClientCreate, ClientCreated, TokenResponse
from vault.db import SessionDep
from vault.errors import (
    InvalidClient,
    InvalidRequest,
    OAuthError,
    responses,
)
from vault.ratelimit import RateLimited, client_address
from vault.runtime import RuntimeDep

router = APIRouter(tags=["auth"])


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("Malformed HTTP Basic credentials.") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("Malformed HTTP Basic credentials.")
    return client_id, secret


@router.post(
    "/v1/oauth/token",
    operation_id="issue_token",
    response_model=TokenResponse,
    responses=responses(OAuthError, InvalidClient, RateLimited),
)
def issue_token(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> TokenResponse:
    """OAuth2 client-credentials grant (form body or HTTP Basic) -> a short-lived JWT.

    Rate-limited per client id and per client address (failed attempts more strictly): 429
    with Retry-After, decided before the secret is checked."""
    limiter, address = runtime.limiter, client_address(request)
    limiter.hit("token_ip", address)
    limiter.check("token_failures_ip", address)
    if grant_type != "client_credentials":
        raise OAuthError(
            "Only grant_type=client_credentials is supported.", code="unsupported_grant_type"
        )
    try:
        creds = _basic_credentials(authorization) or (client_id, client_secret)
        if not creds[0] or not creds[1]:
            raise InvalidClient("client_id and client_secret are required.")
        # the same budget for known and unknown ids: a 429 does not tell which ids exist
        limiter.hit("token_client", creds[0])
        client = service.authenticate_client(
            session=session, client_id=creds[0], client_secret=creds[1]
        )
    except InvalidClient:
        limiter.charge("token_failures_ip", address)
        raise
    token, granted = service.issue_access_token(
        client=client, signer=runtime.signer, settings=runtime.settings, requested_scope=scope
    )
    return TokenResponse(
        access_token=token, expires_in=runtime.settings.token_ttl_seconds, scope=" ".join(granted)
    )


@router.post(
    "/v1/clients",
    operation_id="create_client",
    status_code=status.HTTP_201_CREATED,
    response_model=ClientCreated,
    responses=responses(InvalidRequest),
)
def create_client(
    request: Request,
    body: ClientCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: Admin,
) -> dict:
    """Register an app client; the secret is shown once and stored only as an Argon2 hash."""
    client, secret = service.create_client(
        session=session,
        policy=runtime.policy,
        name=body.name,
        scopes=body.scopes,
        purposes=body.purposes,
        by=principal.caller,
    )
    return {**service.to_public(client), "client_secret": secret}
