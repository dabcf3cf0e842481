from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlmodel import Session
from starlette.types import Receive, Scope

from vault.access import service
from vault.access.schemas import AccessDenied, DataRead, PurposePublic
from vault.audit import record as audit_record
from vault.auth.deps import Bearer, DataReadBearer, DataReader, check_bearer
from vault.auth.scopes import Scope as AuthScope
from vault.db import SessionDep, utcnow
from vault.errors import UnknownAttribute, VaultError, responses
from vault.http import CANONICAL_UUID, NO_STORE, FastPath, error_response, json_response
from vault.policy.errors import UnknownPurpose
from vault.preferences import errors as preference_errors
from vault.preferences import service as preferences_service
from vault.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["access"])

ContactChannelQuery = Annotated[
    str | None,
    Query(
        max_length=16,
        description="the contact channel of this contact (email, sms, push, post, phone)",
    ),
]
TopicQuery = Annotated[
    str | None, Query(max_length=64, description="the topic of this contact (the purpose's)")
]

REASON_STATUS = {"customer_not_found": 404, "customer_erased": 410}

_DENIALS = {
    403: {"model": AccessDenied, "description": "denied with a machine-readable reason"},
    404: {"model": AccessDenied, "description": "customer_not_found"},
    410: {"model": AccessDenied, "description": "customer_erased"},
}


@router.get(
    "/v1/customers/{customer_id}/data",
    operation_id="read_customer_data",
    response_model=DataRead,
    responses={
        **responses(
            UnknownPurpose,
            UnknownAttribute,
            preference_errors.UnknownContactChannel,
            preference_errors.UnknownTopic,
        ),
        **_DENIALS,
    },
)
async def read_customer_data(
    customer_id: UUID,
    request: Request,
    runtime: RuntimeDep,
    bearer: DataReadBearer,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    attributes: Annotated[str | None, Query(max_length=2000)] = None,
    contact_channel: ContactChannelQuery = None,
    topic: TopicQuery = None,
) -> Response:
    """The attributes of one customer that the purpose may use now — or why not.

    For a purpose that contacts customers the customer's own filters count too (403
    ``contact_channel_opted_out``, ``topic_opted_out``, ``paused``,
    ``frequency_cap_reached``): ``contact_channel`` (implied when the purpose has only one)
    and ``topic`` name the contact."""
    # The hottest route: its whole transaction (token check, decision, decryption, audit
    # event) runs in one worker thread, committed with the reads that arrived meanwhile
    # (group commit, :meth:`Runtime.grouped`); each answer leaves only after that commit.
    return await runtime.grouped(
        _read,
        key=customer_id,
        runtime=runtime,
        bearer=bearer,
        customer_id=customer_id,
        purpose=purpose,
        attributes=attributes,
        contact_channel=contact_channel,
        topic=topic,
    )


_READ_PATH = re.compile(f"/v1/customers/({CANONICAL_UUID})/data")
# the route's query parameters and their max_length
_READ_QUERY = {"purpose": 64, "attributes": 2000, "contact_channel": 16, "topic": 64}
_READ_SCOPES = (AuthScope.DATA_READ.value,)


def fast_read(runtime: Runtime) -> FastPath:
    """The gated read without the framework's routing and parameter solving (measured: more
    than half of the read's time in the event loop), for :class:`vault.http.EdgeMiddleware`.
    It takes only a request that :func:`read_customer_data` would take exactly as it is: the
    canonical lower-case id, the route's own query parameters once each, non-empty and within
    their lengths, no body (the edge hands over only a single ``Bearer`` token). Anything
    else (a 422, a 401 for a missing token, an unknown parameter) goes on to the route, so
    every answer the route gives is still the route's. The read itself is the route's:
    :func:`_read` in :meth:`Runtime.grouped`, the token and the client checked, the decision
    on the current consent, the audit event committed before the answer."""

    async def read(
        scope: Scope, token: str, length: int | None, receive: Receive
    ) -> tuple[Response | None, Receive]:
        match = _READ_PATH.fullmatch(scope["path"])
        if match is None or length:
            return None, receive
        query: dict[str, str] = {}
        raw = scope.get("query_string", b"")
        if raw:  # decoded as Starlette's QueryParams decodes it
            for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
                limit = _READ_QUERY.get(name)
                if limit is None or name in query or not value or len(value) > limit:
                    return None, receive
                query[name] = value
        customer_id = UUID(match.group(1))
        request_id = scope["state"]["request_id"]
        try:
            answer = await runtime.grouped(
                _read,
                key=customer_id,
                runtime=runtime,
                bearer=Bearer(token, _READ_SCOPES, request_id),
                customer_id=customer_id,
                purpose=query.get("purpose"),
                attributes=query.get("attributes"),
                contact_channel=query.get("contact_channel"),
                topic=query.get("topic"),
            )
        except VaultError as exc:
            answer = error_response(exc, request_id)
        return answer, receive

    return read


def _read(
    *,
    session: Session,
    runtime: Runtime,
    bearer: Bearer,
    customer_id: UUID,
    purpose: str | None,
    attributes: str | None,
    contact_channel: str | None = None,
    topic: str | None = None,
) -> Response:
    principal = check_bearer(session=session, runtime=runtime, bearer=bearer)
    now = utcnow()
    try:
        pur = service.get_purpose(runtime.policy, purpose)
        requested = service.parse_attribute_list(runtime.policy, attributes)
        contact = service.ContactAsked(
            preferences_service.contact_of(pur, contact_channel, topic, required=False), topic
        )
    except VaultError as exc:
        audit_record.record(
            session=session,
            by=principal.caller,
            action=service.READ_ACTION,
            outcome="denied",
            customer_id=None,
            reason=exc.code,
            details={"requested_customer_id": str(customer_id)},
            now=now,
        )
        return json_response(exc.body(), status_code=exc.status, headers=NO_STORE)
    result = service.read(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        principal=principal,
        customer_id=customer_id,
        purpose=pur,
        requested=requested,
        now=now,
        contact=contact,
    )
    d = result.decision
    if not d.allowed:
        body: dict = {"error": d.reason, "detail": d.detail}
        if d.attributes:
            body["attributes"] = list(d.attributes)
            body["detail"] = f"{d.detail} Not permitted: {', '.join(d.attributes)}."
        return json_response(body, status_code=REASON_STATUS.get(d.reason, 403), headers=NO_STORE)
    return json_response(
        {"customer_id": str(customer_id), "purpose": pur.id, "attributes": result.attributes},
        headers=NO_STORE,
    )


@router.get(
    "/v1/purposes/{purpose}/audience",
    operation_id="export_audience",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": 'one {"customer_id","attributes"} per line, and "unsubscribe_url" '
            "(RFC 8058 one-click, for List-Unsubscribe) when the purpose contacts by e-mail",
        },
        **responses(
            UnknownPurpose,
            UnknownAttribute,
            preference_errors.UnknownContactChannel,
            preference_errors.UnknownTopic,
            preference_errors.ContactChannelRequired,
        ),
    },
)
def export_audience(
    purpose: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DataReader,
    attributes: Annotated[str | None, Query(max_length=2000)] = None,
    contact_channel: ContactChannelQuery = None,
    topic: TopicQuery = None,
):
    """Every customer the purpose may use now, with the allowed (reduced) attributes, as NDJSON.

    A purpose that contacts customers exports one contact: by ``contact_channel`` (required
    when the purpose has several: 422 ``contact_channel_required``), about ``topic``; customers
    who switched that channel or topic off, paused, or were already contacted in their
    frequency's current window are left out."""
    now = utcnow()
    pur = service.get_purpose(runtime.policy, purpose)
    requested = service.parse_attribute_list(runtime.policy, attributes)
    contact = service.ContactAsked(
        preferences_service.contact_of(pur, contact_channel, topic, required=True), topic
    )
    check = service.decide_export(principal=principal, purpose=pur, requested=requested)
    if not check.allowed:
        audit_record.record(
            session=session,
            by=principal.caller,
            action=service.EXPORT_ACTION,
            outcome="denied",
            purpose=pur.id,
            attributes=list(check.attributes),
            reason=check.reason,
            now=now,
        )
        body: dict = {"error": check.reason, "detail": check.detail}
        if check.attributes:
            body["attributes"] = list(check.attributes)
        return JSONResponse(body, status_code=403, headers=NO_STORE)
    stream = service.audience(
        engine=runtime.engine,
        envelope=runtime.envelope,
        policy=runtime.policy,
        principal=principal,
        purpose=pur,
        requested=requested,
        now=now,
        public_url=runtime.settings.public_url,
        contact=contact,
    )
    return StreamingResponse(stream, media_type="application/x-ndjson", headers=NO_STORE)


@router.get("/v1/purposes", operation_id="list_purposes", response_model=list[PurposePublic])
def list_purposes(runtime: RuntimeDep) -> list[dict]:
    """Public: every purpose with its legal basis, attributes and plain-language texts."""
    policy = runtime.policy
    return [
        {
            **p.model_dump(
                include={
                    "id",
                    "version",
                    "attributes",
                    "reduce",
                    "double_opt_in",
                    "consent_ttl_days",
                    "reconsent",
                    "gpc_opt_out",
                    "direct_marketing",
                    "dpv",
                    "tcf_purposes",
                    "title",
                    "description",
                    "topics",
                    "frequencies",
                }
            ),
            "contact_channels": [c.value for c in p.contact_channels],
            "legal_basis": p.legal_basis.value,
            "recipients": [
                {"id": r, **policy.recipients[r].model_dump(include={"name", "kind", "country"})}
                for r in p.recipients
            ],
        }
        for p in policy.purposes.values()
    ]
