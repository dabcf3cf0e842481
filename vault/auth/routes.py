from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Header, Path, Request, Response, status

from vault.auth import service
from vault.auth.deps import Admin
from vault.auth.errors import ClientDeleted, ClientNotFound, OperatorRequired
from vault.auth.models import (
    ClientCreate,
    ClientCreated,
    ClientList,
    ClientPublic,
    TokenResponse,
)
from vault.db import SessionDep
from vault.errors import (
    Forbidden,
    InvalidClient,
    InvalidRequest,
    OAuthError,
    responses,
)
from vault.http import page_size
from vault.ratelimit import RateLimited, client_address
from vault.runtime import RuntimeDep

router = APIRouter(tags=["auth"])

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def form_encoded(request: Request) -> None:
    """RFC 6749 section 4.4.2: the token request is form-encoded. A JSON body would otherwise
    fail as a generic validation error naming a missing ``grant_type``."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in FORM_TYPES:
        raise OAuthError(
            "The token request must be form-encoded (Content-Type: "
            "application/x-www-form-urlencoded), e.g. grant_type=client_credentials&"
            "client_id=...&client_secret=...; JSON is not accepted."
        )


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
    dependencies=[Depends(form_encoded)],
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

    Rate-limited per client address (every request, and failures) and per client id (failures,
    except from an address that got a token for it within a day): 429 with Retry-After,
    decided before the secret is checked. Every attempt is charged as a failure first and
    refunded when it succeeds, so parallel wrong secrets cannot overtake the limit."""
    limiter, address = runtime.limiter, client_address(request)
    limiter.hit("token_ip", address)
    ip_charge = limiter.charge_first("token_failures_ip", address)
    if grant_type != "client_credentials":
        raise OAuthError(
            "Only grant_type=client_credentials is supported.", code="unsupported_grant_type"
        )
    creds = _basic_credentials(authorization) or (client_id, client_secret)
    if not creds[0] or not creds[1]:
        raise InvalidClient("client_id and client_secret are required.")
    # the same budget for known and unknown ids: a 429 does not tell which ids exist
    known = limiter.remembers("token_known", creds[0], address)
    client_charge = None
    if not known:
        client_charge = limiter.charge_first("token_client", creds[0])
    try:
        client = service.authenticate_client(
            session=session, client_id=creds[0], client_secret=creds[1]
        )
    except InvalidClient:
        if known:  # counted, but never refused to its known address
            limiter.charge("token_client", creds[0])
        raise
    limiter.refund(ip_charge)
    limiter.refund(client_charge)
    limiter.remember("token_known", client.id, address)
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
    responses=responses(Forbidden, OperatorRequired, InvalidRequest),
)
def create_client(
    request: Request,
    body: ClientCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: Admin,
) -> dict:
    """Register an app client; the secret is shown once and stored only as an Argon2 hash.

    Not for `admin` or the scopes that reach customer data (`data:read`, `dsr:execute`,
    `customers:write`, `consent:write`, `selfservice:issue`): those only an operator grants,
    with `vault clients create` (403 `operator_required`, audited)."""
    client, secret = service.create_client(
        session=session,
        policy=runtime.policy,
        name=body.name,
        scopes=body.scopes,
        purposes=body.purposes,
        by=principal.caller,
    )
    return {**service.to_public(client), "client_secret": secret}


ClientIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$", description="cv_…")
]


@router.get(
    "/v1/clients",
    operation_id="list_clients",
    response_model=ClientList,
    responses=responses(),
)
def list_clients(
    session: SessionDep,
    principal: Admin,
    include_deleted: bool = False,
    limit: Annotated[int, page_size(service.PAGE_MAX)] = service.PAGE_MAX,
) -> dict:
    """App clients, oldest first (never their secrets); deleted ones with `include_deleted`."""
    rows = service.list_clients(session=session, include_deleted=include_deleted, limit=limit)
    return {"clients": [service.to_public(c) for c in rows]}


@router.get(
    "/v1/clients/{client_id}",
    operation_id="get_client",
    response_model=ClientPublic,
    responses=responses(ClientNotFound),
)
def get_client(client_id: ClientIdPath, session: SessionDep, principal: Admin) -> dict:
    """One app client, deleted ones included (`status`)."""
    return service.to_public(service.get_client(session=session, client_id=client_id))


@router.post(
    "/v1/clients/{client_id}/disable",
    operation_id="disable_client",
    response_model=ClientPublic,
    responses=responses(ClientNotFound, ClientDeleted),
)
def disable_client(client_id: ClientIdPath, session: SessionDep, principal: Admin) -> dict:
    """Stop a client: its secret and every token it holds are refused from the next request."""
    client = service.disable_client(session=session, client_id=client_id, by=principal.caller)
    return service.to_public(client)


@router.post(
    "/v1/clients/{client_id}/enable",
    operation_id="enable_client",
    response_model=ClientPublic,
    responses=responses(ClientNotFound, ClientDeleted),
)
def enable_client(client_id: ClientIdPath, session: SessionDep, principal: Admin) -> dict:
    """Let a disabled client in again."""
    client = service.enable_client(session=session, client_id=client_id, by=principal.caller)
    return service.to_public(client)


@router.post(
    "/v1/clients/{client_id}/rotate-secret",
    operation_id="rotate_client_secret",
    response_model=ClientCreated,
    responses=responses(Forbidden, OperatorRequired, ClientNotFound, ClientDeleted),
)
def rotate_client_secret(client_id: ClientIdPath, session: SessionDep, principal: Admin) -> dict:
    """A new secret, shown once; the old secret and every token issued under it stop at once.

    For a client holding `admin` or a customer-data scope only the operator may
    (`vault clients rotate-secret`): the new secret would hand that access to the caller."""
    client, secret = service.rotate_secret(
        session=session, client_id=client_id, by=principal.caller
    )
    return {**service.to_public(client), "client_secret": secret}


@router.delete(
    "/v1/clients/{client_id}",
    operation_id="delete_client",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(ClientNotFound, ClientDeleted),
)
def delete_client(client_id: ClientIdPath, session: SessionDep, principal: Admin) -> Response:
    """Delete a client for good: its tokens stop on the next request; the record stays,
    without a secret, so the audit history keeps naming it."""
    service.delete_client(session=session, client_id=client_id, by=principal.caller)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
