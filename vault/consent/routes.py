from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlmodel import Session
from starlette.types import Receive
from starlette.types import Scope as AsgiScope

from vault.auth.deps import (
    Bearer,
    ConsentConfirmer,
    ConsentReader,
    ConsentWriteBearer,
    check_bearer,
)
from vault.auth.scopes import Scope
from vault.consent import dossier, errors, idempotency, reads, schemas, service
from vault.consent.schemas import (
    ConfirmRequest,
    ConsentHistory,
    ConsentWrite,
    ConsentWriteResult,
    CustomerConsents,
    SignedConsentDossier,
)
from vault.db import Instant, SessionDep, utcnow
from vault.errors import (
    CustomerErased,
    CustomerNotFound,
    InvalidRequest,
    VaultError,
    responses,
)
from vault.http import (
    CANONICAL_UUID,
    FastPath,
    error_response,
    json_response,
    page_size,
    replaying,
)
from vault.policy.errors import UnknownPurpose
from vault.runtime import Runtime, RuntimeDep
from vault.selfservice import dossier as dossier_page

router = APIRouter(tags=["consent"])


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="retries with the same key get the first answer, without a second event",
    ),
]


@router.post(
    "/v1/customers/{customer_id}/consents",
    operation_id="record_consent",
    status_code=status.HTTP_201_CREATED,
    response_model=ConsentWriteResult,
    responses=responses(
        CustomerNotFound,
        CustomerErased,
        UnknownPurpose,
        errors.ConsentNotApplicable,
        errors.InvalidConsentStatus,
        errors.OccurredInFuture,
        errors.OccurredTooLongAgo,
        errors.InvalidEvidence,
        errors.EvidenceKeyNotAllowed,
        errors.EvidenceContainsContactData,
        errors.ChannelNotAllowed,
        errors.IdempotencyKeyReused,
        errors.IdempotencyConflict,
        InvalidRequest,
    ),
)
async def record_consent(
    customer_id: UUID,
    body: ConsentWrite,
    runtime: RuntimeDep,
    bearer: ConsentWriteBearer,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record a consent statement (grant, withdrawal, refusal) and return its signed receipt."""
    # The hot write: token check, event, projection, receipt and commit run in one worker
    # thread (one hop instead of one per dependency), as the hot read does, and with the
    # writes of other requests that arrived meanwhile in one commit (group commit).
    # Commits before the answer is sent: nothing unrecorded is confirmed.
    answer = await runtime.grouped(
        _record,
        key=customer_id,
        runtime=runtime,
        bearer=bearer,
        customer_id=customer_id,
        write=body,
        idempotency_key=idempotency_key,
    )
    return json_response(answer, status.HTTP_201_CREATED)


_WRITE_PATH = re.compile(f"/v1/customers/({CANONICAL_UUID})/consents")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_WRITE_SCOPES = (Scope.CONSENT_WRITE.value,)


def fast_consent_write(runtime: Runtime) -> FastPath:
    """The consent write without the framework's routing, dependency solving and body parsing
    (measured: about half of a write's CPU), for :class:`vault.http.EdgeMiddleware`, which has
    checked the Content-Length against the door's cap and the token's signature and scope
    before the body is read. It takes only a request that :func:`record_consent` would take
    exactly as it is: the canonical lower-case id, no query string (the edge hands over only a
    single ``Bearer`` token),
    ``Content-Type: application/json``, at most one valid ``Idempotency-Key``, and a body
    that is JSON and a valid :class:`ConsentWrite` (validated as the route validates it).
    Anything else goes on to the route with the body replayed, so every other answer is still
    the route's. The write itself is the route's: :func:`_record` in :meth:`Runtime.grouped`."""

    async def write(
        scope: AsgiScope, token: str, length: int | None, receive: Receive
    ) -> tuple[Response | None, Receive]:
        match = _WRITE_PATH.fullmatch(scope["path"])
        if match is None or not length or scope.get("query_string"):
            return None, receive
        content_types, keys = [], []
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_types.append(value)
            elif name == b"idempotency-key":
                keys.append(value)
        if (
            len(content_types) != 1
            or content_types[0].split(b";", 1)[0].strip().lower() != b"application/json"
            or len(keys) > 1
            or (keys and not _IDEMPOTENCY_KEY.fullmatch(keys[0].decode("latin-1")))
        ):
            return None, receive
        messages, chunks = [], []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return None, replaying(messages, receive)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            body = ConsentWrite.model_validate(orjson.loads(b"".join(chunks)))
        except (orjson.JSONDecodeError, ValidationError):
            return None, replaying(messages, receive)
        customer_id = UUID(match.group(1))
        request_id = scope["state"]["request_id"]
        try:
            answer = await runtime.grouped(
                _record,
                key=customer_id,
                runtime=runtime,
                bearer=Bearer(token, _WRITE_SCOPES, request_id),
                customer_id=customer_id,
                write=body,
                idempotency_key=keys[0].decode("latin-1") if keys else None,
            )
        except VaultError as exc:
            return error_response(exc, request_id), receive
        return json_response(answer, status.HTTP_201_CREATED), receive

    return write


def _record(
    *,
    session: Session,
    runtime: Runtime,
    bearer: Bearer,
    customer_id: UUID,
    write: ConsentWrite,
    idempotency_key: str | None,
) -> dict:
    principal = check_bearer(session=session, runtime=runtime, bearer=bearer)
    return idempotency.submit(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        envelope=runtime.envelope,
        customer_id=customer_id,
        write=write,
        by=principal.caller,
        idempotency_key=idempotency_key,
        token_to_caller=Scope.CONSENT_CONFIRM in principal.scopes,
    )


@router.post(
    "/v1/consents/confirm",
    operation_id="confirm_consent",
    response_model=ConsentWriteResult,
    responses=responses(
        errors.ConfirmationTokenNotFound,
        errors.ConfirmationTokenUsed,
        errors.ConfirmationTokenExpired,
        errors.ConfirmationSuperseded,
        errors.ConfirmationByRecorder,
        CustomerErased,
    ),
)
def confirm_consent(
    body: ConfirmRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: ConsentConfirmer,
) -> Response:
    """Confirm a double opt-in grant with its single-use token, for apps that send their own
    confirmation mail (scope consent:confirm; never the client that recorded the grant). A
    token the vault mailed is confirmed only on its page, /confirm/{token}."""
    now = utcnow()
    result = service.confirm(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        token=body.token,
        by=principal.caller,
        now=now,
    )
    return json_response(
        schemas.write_result(result, runtime.policy.purposes[result.event.purpose], now)
    )


@router.get(
    "/v1/customers/{customer_id}/consents",
    operation_id="get_consents",
    response_model=CustomerConsents,
    responses=responses(CustomerNotFound, CustomerErased, errors.AsOfInFuture),
)
def get_consents(
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: ConsentReader,
    as_of: Annotated[
        Instant | None,
        Query(description="answer as of this past instant (replayed from the ledger)"),
    ] = None,
) -> dict:
    """Effective consent per consent-based purpose, now or as of a past instant."""
    states = reads.read_consents(
        session=session, policy=runtime.policy, customer_id=customer_id, now=utcnow(), as_of=as_of
    )
    return {
        "customer_id": customer_id,
        "purposes": [schemas.state_public(s) for s in states.values()],
    }


@router.get(
    "/v1/customers/{customer_id}/consents/history",
    operation_id="get_consent_history",
    response_model=ConsentHistory,
    responses=responses(CustomerNotFound),
)
def get_consent_history(
    customer_id: UUID,
    session: SessionDep,
    principal: ConsentReader,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, page_size(reads.HISTORY_MAX)] = 1000,
) -> dict:
    """The customer's consent ledger with each event's receipt (kept after erasure)."""
    events = reads.history(session=session, customer_id=customer_id, purpose=purpose, limit=limit)
    return {
        "customer_id": customer_id,
        "events": [{**schemas.event_public(e), "receipt": e.receipt} for e in events],
    }


@router.get(
    "/v1/customers/{customer_id}/consents/dossier",
    operation_id="get_consent_dossier",
    response_model=SignedConsentDossier,
    responses={
        **responses(CustomerNotFound),
        200: {
            "description": "The dossier and its JWS (payload: the same dossier), or with "
            "`Accept: text/html` a printable page (de/en).",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
    },
)
def get_consent_dossier(
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: ConsentReader,
    accept: Annotated[str | None, Header()] = None,
    accept_language: Annotated[str | None, Header()] = None,
    lang: Annotated[str | None, Query(pattern="^(de|en)$")] = None,
) -> Response:
    """Everything that proves the customer's consents, per purpose (statements, evidence,
    receipts, double opt-in mails, last use), signed; kept after erasure, without PII."""
    built = dossier.build(
        session=session,
        policy=runtime.policy,
        customer_id=customer_id,
        issuer=runtime.settings.issuer,
        now=utcnow(),
    )
    if accept and "text/html" in accept and "application/json" not in accept:
        language = dossier_page.language(lang, accept_language)
        return HTMLResponse(
            dossier_page.render(built, language, base_url=runtime.settings.public_url)
        )
    return json_response({"dossier": built, "jws": dossier.sign(runtime.signer, built)})
