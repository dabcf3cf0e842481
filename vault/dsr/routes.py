"""The DSR API: export, erasure, legal hold, restriction, objection, request tracking, and the
Art. 30 record. Thin: each route calls one function of :mod:`vault.dsr.export`,
:mod:`vault.dsr.erasure`, :mod:`vault.dsr.rights` or :mod:`vault.dsr.requests`."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse

from vault.auth.deps import Authenticated, DsrExecutor
from vault.auth.scopes import Scope
from vault.db import SessionDep, utcnow
from vault.dsr import erasure, export, requests, rights, ropa
from vault.dsr import errors as dsr_errors
from vault.dsr.models import RequestKind, RequestStatus
from vault.dsr.notes import NoteReader
from vault.dsr.schemas import (
    CustomerRights,
    DataExport,
    ErasureCertificatePublic,
    LegalHoldClear,
    LegalHoldSet,
    ObjectionBody,
    RequestClose,
    RequestCreate,
    RequestExtend,
    RequestList,
    RequestPublic,
    RestrictionSet,
)
from vault.errors import (
    CustomerErased,
    CustomerNotFound,
    Forbidden,
    InvalidRequest,
    responses,
)
from vault.http import NO_STORE, page_size
from vault.runtime import RuntimeDep

router = APIRouter(tags=["dsr"])

_CUSTOMER = (CustomerNotFound, CustomerErased)


# --- export and erasure ---------------------------------------------------------------------


@router.get(
    "/v1/customers/{customer_id}/export",
    operation_id="export_customer",
    response_model=DataExport,
    responses=responses(*_CUSTOMER, InvalidRequest),
)
def export_customer(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
    kind: Annotated[RequestKind, Query(description="access (Art. 15) or portability")] = (
        RequestKind.ACCESS
    ),
    receipts: Annotated[bool, Query(description="include the signed consent receipts")] = False,
) -> Response:
    """Everything the vault holds about a customer (GDPR Art. 15 / 20), machine-readable."""
    document = export.export(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=customer_id,
        by=principal.caller,
        kind=kind,
        include_receipts=receipts,
    )
    return Response(
        orjson.dumps(document),
        media_type="application/json",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{customer_id}.json"'},
    )


@router.delete(
    "/v1/customers/{customer_id}",
    operation_id="erase_customer",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **responses(*_CUSTOMER, dsr_errors.LegalHold, dsr_errors.ErasureIncomplete),
        204: {
            "description": "Erased. The signed erasure certificate is in the header.",
            "headers": {
                "Erasure-Certificate": {
                    "description": "compact JWS (typ erasure-certificate+jwt) under the key "
                    "in /.well-known/jwks.json",
                    "schema": {"type": "string"},
                }
            },
        },
    },
)
def erase_customer(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> Response:
    """Erase a customer (Art. 17) by destroying its data key; consent ledger and audit stay.

    Answered once no deleted byte is left in the database's files; 503 `erasure_incomplete`
    (with Retry-After) if a long reader kept SQLite from removing them: the customer is erased,
    the vault finishes the cleanup with its next checkpoint. The answer carries the signed
    erasure certificate (`Erasure-Certificate`)."""
    erased = erasure.erase(
        session=session,
        customer_id=customer_id,
        by=principal.caller,
        notary=erasure.Notary.of(runtime),
    )
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={"Erasure-Certificate": erased.certificate.jws},
    )


@router.get(
    "/v1/customers/{customer_id}/erasure-certificate",
    operation_id="get_erasure_certificate",
    response_model=ErasureCertificatePublic,
    responses=responses(dsr_errors.ErasureCertificateNotFound),
)
def get_erasure_certificate(
    customer_id: UUID, session: SessionDep, principal: DsrExecutor
) -> dict[str, Any]:
    """The signed certificate of the customer's erasure (404 when it was never erased)."""
    cert = erasure.certificate_of(session, customer_id)
    if cert is None:
        raise dsr_errors.ErasureCertificateNotFound()
    return {
        "customer_id": cert.customer_id,
        "certificate": cert.jws,
        "issued_at": cert.issued_at,
    }


@router.post(
    "/v1/customers/{customer_id}/legal-hold",
    operation_id="set_legal_hold",
    response_model=CustomerRights,
    responses=responses(*_CUSTOMER),
)
def set_legal_hold(
    request: Request,
    customer_id: UUID,
    body: LegalHoldSet,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> dict[str, Any]:
    """Put the customer's data under a legal hold (a reason code, an optional note kept
    encrypted under the customer's key): erasure answers 409 until it is cleared."""
    return rights.rights_public(
        rights.set_legal_hold(
            session=session,
            envelope=runtime.envelope,
            customer_id=customer_id,
            reason=body.reason,
            note=body.note,
            by=principal.caller,
        ),
        runtime.envelope,
    )


@router.delete(
    "/v1/customers/{customer_id}/legal-hold",
    operation_id="clear_legal_hold",
    response_model=CustomerRights,
    responses=responses(*_CUSTOMER),
)
def clear_legal_hold(
    request: Request,
    customer_id: UUID,
    body: LegalHoldClear,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> dict[str, Any]:
    """Clear the legal hold (the body's reason code says why it no longer applies)."""
    return rights.rights_public(
        rights.clear_legal_hold(
            session=session,
            customer_id=customer_id,
            reason=body.reason,
            by=principal.caller,
        ),
        runtime.envelope,
    )


# --- restriction and objection -------------------------------------------------------------


@router.post(
    "/v1/customers/{customer_id}/restriction",
    operation_id="restrict_customer",
    response_model=CustomerRights,
    responses=responses(*_CUSTOMER),
)
def restrict_customer(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
    body: RestrictionSet | None = None,
) -> dict[str, Any]:
    """Restrict processing (Art. 18): nothing is released to any purpose until lifted. The
    optional body names the Art. 18(1) ground and a note (kept encrypted)."""
    body = body or RestrictionSet()
    return rights.rights_public(
        rights.restrict(
            session=session,
            envelope=runtime.envelope,
            customer_id=customer_id,
            reason=body.reason,
            note=body.note,
            by=principal.caller,
        ),
        runtime.envelope,
    )


@router.delete(
    "/v1/customers/{customer_id}/restriction",
    operation_id="lift_restriction",
    response_model=CustomerRights,
    responses=responses(*_CUSTOMER),
)
def lift_restriction(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> dict[str, Any]:
    """Lift a restriction (Art. 18(3)); reads follow the legal basis again."""
    return rights.rights_public(
        rights.lift_restriction(
            session=session,
            customer_id=customer_id,
            by=principal.caller,
        ),
        runtime.envelope,
    )


@router.post(
    "/v1/customers/{customer_id}/objection",
    operation_id="object_to_processing",
    response_model=CustomerRights,
    responses=responses(*_CUSTOMER, dsr_errors.InvalidObjectionScope),
)
def object_to_processing(
    request: Request,
    customer_id: UUID,
    body: ObjectionBody,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> dict[str, Any]:
    """Record an objection (Art. 21): direct marketing, or a legitimate-interest purpose."""
    return rights.rights_public(
        rights.object_to(
            session=session,
            policy=runtime.policy,
            customer_id=customer_id,
            scope=body.scope,
            by=principal.caller,
        ),
        runtime.envelope,
    )


@router.delete(
    "/v1/customers/{customer_id}/objection",
    operation_id="withdraw_objection",
    response_model=CustomerRights,
    responses=responses(*_CUSTOMER, dsr_errors.InvalidObjectionScope),
)
def withdraw_objection(
    request: Request,
    customer_id: UUID,
    body: ObjectionBody,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> dict[str, Any]:
    """Withdraw an objection the customer made earlier."""
    return rights.rights_public(
        rights.withdraw_objection(
            session=session,
            policy=runtime.policy,
            customer_id=customer_id,
            scope=body.scope,
            by=principal.caller,
        ),
        runtime.envelope,
    )


# --- request tracking ------------------------------------------------------------------------


@router.get(
    "/v1/dsr/requests",
    operation_id="list_dsr_requests",
    response_model=RequestList,
    responses=responses(InvalidRequest),
)
def list_dsr_requests(
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
    customer_id: UUID | None = None,
    kind: RequestKind | None = None,
    status: RequestStatus | None = None,
    overdue: Annotated[bool, Query(description="open and past their deadline")] = False,
    cursor: Annotated[UUID | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, page_size(requests.PAGE_MAX)] = 100,
) -> dict[str, Any]:
    """Tracked data-subject requests, earliest deadline first."""
    now = utcnow()
    rows = requests.list_requests(
        session=session,
        customer_id=customer_id,
        kind=kind,
        status=status,
        overdue=overdue,
        now=now,
        after=cursor,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    reader = NoteReader(session, runtime.envelope)
    return {
        "requests": [requests.request_public(r, reader, now) for r in rows],
        "next_cursor": str(rows[-1].id) if more else None,
    }


@router.post(
    "/v1/dsr/requests",
    operation_id="create_dsr_request",
    status_code=status.HTTP_201_CREATED,
    response_model=RequestPublic,
    responses=responses(CustomerNotFound, InvalidRequest),
)
def create_dsr_request(
    request: Request,
    body: RequestCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> dict[str, Any]:
    """Record a request as received; it is due one calendar month later (Art. 12(3))."""
    row = requests.create_request(
        session=session,
        customer_id=body.customer_id,
        kind=body.kind,
        received_at=body.received_at,
        by=principal.caller,
    )
    return requests.request_public(row, NoteReader(session, runtime.envelope))


@router.get(
    "/v1/dsr/requests/{request_uuid}",
    operation_id="get_dsr_request",
    response_model=RequestPublic,
    responses=responses(dsr_errors.RequestNotFound),
)
def get_dsr_request(
    request_uuid: UUID, session: SessionDep, runtime: RuntimeDep, principal: DsrExecutor
) -> dict[str, Any]:
    """One tracked request."""
    row = requests.get_request(session, request_uuid)
    return requests.request_public(row, NoteReader(session, runtime.envelope))


@router.post(
    "/v1/dsr/requests/{request_uuid}/extension",
    operation_id="extend_dsr_request",
    response_model=RequestPublic,
    responses=responses(
        dsr_errors.RequestNotFound,
        dsr_errors.RequestClosed,
        dsr_errors.ExtensionReasonRequired,
        dsr_errors.ExtensionTooLong,
        CustomerErased,
    ),
)
def extend_dsr_request(
    request: Request,
    request_uuid: UUID,
    body: RequestExtend,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> dict[str, Any]:
    """Extend the deadline by up to two further months in total, with a reason code
    (complexity, number_of_requests) and an optional note (410 once the customer is erased)."""
    row = requests.extend_request(
        session=session,
        envelope=runtime.envelope,
        request_uuid=request_uuid,
        months=body.months,
        reason=body.reason,
        note=body.note,
        by=principal.caller,
    )
    return requests.request_public(row, NoteReader(session, runtime.envelope))


@router.post(
    "/v1/dsr/requests/{request_uuid}/close",
    operation_id="close_dsr_request",
    response_model=RequestPublic,
    responses=responses(
        dsr_errors.RequestNotFound,
        dsr_errors.RequestClosed,
        dsr_errors.RejectionReasonRequired,
        dsr_errors.InvalidCloseReason,
        CustomerErased,
    ),
)
def close_dsr_request(
    request: Request,
    request_uuid: UUID,
    body: RequestClose,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: DsrExecutor,
) -> dict[str, Any]:
    """Close a request as completed or rejected (a rejection needs a reason code), with an
    optional note (410 once the customer is erased)."""
    row = requests.close_request(
        session=session,
        envelope=runtime.envelope,
        request_uuid=request_uuid,
        status=body.status,
        reason=body.reason,
        note=body.note,
        by=principal.caller,
    )
    return requests.request_public(row, NoteReader(session, runtime.envelope))


# --- Art. 30 record ----------------------------------------------------------------------------

_ROPA_SCOPES = frozenset({Scope.DSR_EXECUTE.value, Scope.AUDIT_READ.value})


@router.get(
    "/v1/records-of-processing",
    operation_id="records_of_processing",
    responses={
        **responses(),
        200: {
            "description": "The record as JSON, or with `Accept: text/html` as a readable page.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
    },
)
def records_of_processing(
    principal: Authenticated,
    runtime: RuntimeDep,
    accept: Annotated[str | None, Header()] = None,
    lang: Annotated[str, Query(pattern="^(de|en)$")] = "en",
) -> Response:
    """The record of processing activities (Art. 30) built from the policy files; needs the
    scope dsr:execute or audit:read (an internal document for the controller and auditors)."""
    if not principal.scopes & _ROPA_SCOPES:
        raise Forbidden("This operation needs the scope dsr:execute or audit:read.")
    record = ropa.build(runtime.policy)
    if accept and "text/html" in accept and "application/json" not in accept:
        return HTMLResponse(ropa.render_html(record, lang, base_url=runtime.settings.public_url))
    return JSONResponse(record)
