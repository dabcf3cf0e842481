"""Auth as named annotated dependencies: ``principal: DataReader`` is
``Annotated[Principal, Security(authenticate, scopes=["data:read"])]``.

The scopes a route needs appear in its signature and so in the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from sqlmodel import Session

from vault.auth import service
from vault.auth.scopes import SCOPE_DESCRIPTIONS, Scope
from vault.auth.service import Principal
from vault.db import SessionDep
from vault.errors import Forbidden, NotAuthenticated
from vault.runtime import Runtime, RuntimeDep

oauth2_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(
            tokenUrl="/v1/oauth/token", scopes=SCOPE_DESCRIPTIONS
        )
    ),
    scheme_name="client_credentials",
    auto_error=False,
)


def token_from_header(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (401 without one)."""
    if not authorization:
        raise NotAuthenticated()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Use 'Authorization: Bearer <token>'.")
    return token.strip()


async def bearer_token(authorization: Annotated[str | None, Depends(oauth2_scheme)]) -> str:
    return token_from_header(authorization)


def check_before_body(
    *, runtime: Runtime, authorization: str | None, scopes: Sequence[str]
) -> None:
    """What the edge (:class:`vault.http.EdgeMiddleware`) checks before it lets a route receive
    its body: a bearer token whose signature and claims are acceptable and which carries
    ``scopes``; the same 401 and 403 answers as :func:`check_token`, without the database.
    The route's own dependency then checks the client as it is now, as on every request."""
    claims = service.verified_claims(
        token=token_from_header(authorization), signer=runtime.signer, settings=runtime.settings
    )
    held = service.token_scopes(claims)
    missing = [s for s in scopes if s not in held]
    if missing:
        raise Forbidden(f"This operation needs the scope {' and '.join(missing)}.")


def check_token(
    *,
    session: Session,
    runtime: Runtime,
    token: str,
    scopes: Sequence[str],
    request_id: str | None = None,
) -> Principal:
    """The caller behind ``token`` in request ``request_id``, if it holds every scope in
    ``scopes``."""
    principal = service.principal_from_token(
        session=session, token=token, signer=runtime.signer, settings=runtime.settings
    )
    missing = [s for s in scopes if s not in principal.scopes]
    if missing:
        raise Forbidden(f"This operation needs the scope {' and '.join(missing)}.")
    return replace(principal, request_id=request_id)


def authenticate(
    request: Request,
    security_scopes: SecurityScopes,
    token: Annotated[str, Depends(bearer_token)],
    session: SessionDep,
    runtime: RuntimeDep,
) -> Principal:
    return check_token(
        session=session,
        runtime=runtime,
        token=token,
        scopes=security_scopes.scopes,
        request_id=request.state.request_id,
    )


@dataclass(frozen=True)
class Bearer:
    """A bearer token and the scopes the route needs, not yet checked, and the request it came
    in: for routes that run their whole transaction in one worker thread (the hot read) and call
    :func:`check_token` inside it."""

    token: str
    scopes: tuple[str, ...]
    request_id: str | None = None

    def __repr__(self) -> str:
        return f"Bearer(***, scopes={self.scopes})"


def check_bearer(*, session: Session, runtime: Runtime, bearer: Bearer) -> Principal:
    """:func:`check_token` for a :class:`Bearer` taken unchecked by a hot route."""
    return check_token(
        session=session,
        runtime=runtime,
        token=bearer.token,
        scopes=bearer.scopes,
        request_id=bearer.request_id,
    )


async def bearer_for(
    request: Request,
    security_scopes: SecurityScopes,
    token: Annotated[str, Depends(bearer_token)],
) -> Bearer:
    return Bearer(token, tuple(security_scopes.scopes), request.state.request_id)


def _needs(scope: Scope) -> Any:
    return Security(authenticate, scopes=[scope.value])


# What a route needs, named: ``principal: DataReader``. The scope shows in the OpenAPI document.
Authenticated = Annotated[Principal, Security(authenticate)]
CustomerWriter = Annotated[Principal, _needs(Scope.CUSTOMERS_WRITE)]
ConsentWriter = Annotated[Principal, _needs(Scope.CONSENT_WRITE)]
ConsentReader = Annotated[Principal, _needs(Scope.CONSENT_READ)]
ConsentConfirmer = Annotated[Principal, _needs(Scope.CONSENT_CONFIRM)]
DataReader = Annotated[Principal, _needs(Scope.DATA_READ)]
DsrExecutor = Annotated[Principal, _needs(Scope.DSR_EXECUTE)]
LinkIssuer = Annotated[Principal, _needs(Scope.SELFSERVICE_ISSUE)]
AuditReader = Annotated[Principal, _needs(Scope.AUDIT_READ)]
WebhookManager = Annotated[Principal, _needs(Scope.WEBHOOKS_MANAGE)]
Admin = Annotated[Principal, _needs(Scope.ADMIN)]


def _bearer_needing(scope: Scope) -> Any:
    return Security(bearer_for, scopes=[scope.value])


# Routes that run their whole transaction themselves (one worker-thread hop) take the token
# unchecked and call :func:`check_token` inside it; the scope still shows in the OpenAPI document.
DataReadBearer = Annotated[Bearer, _bearer_needing(Scope.DATA_READ)]
ConsentWriteBearer = Annotated[Bearer, _bearer_needing(Scope.CONSENT_WRITE)]
ContactsWriteBearer = Annotated[Bearer, _bearer_needing(Scope.CONTACTS_WRITE)]
AuditReadBearer = Annotated[Bearer, _bearer_needing(Scope.AUDIT_READ)]
