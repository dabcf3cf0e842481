from __future__ import annotations

import logging
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Request, Security, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session
from starlette.requests import ClientDisconnect

from vault.auth.deps import Bearer, CustomerWriter, bearer_for, check_bearer
from vault.auth.scopes import Scope
from vault.auth.service import Principal
from vault.customers import importer, schemas, service
from vault.customers.schemas import (
    CustomerCreate,
    CustomerPublic,
    CustomerUpdate,
    ImportResult,
    LookupRequest,
    LookupResult,
)
from vault.db import SessionDep
from vault.errors import (
    Conflict,
    CustomerErased,
    CustomerNotFound,
    InvalidRequest,
    PayloadTooLarge,
    UnknownAttribute,
    ValidationFailed,
    VaultError,
    responses,
)
from vault.policy.errors import InvalidCharacters
from vault.runtime import Runtime, RuntimeDep

log = logging.getLogger("vault")
router = APIRouter(tags=["customers"])


@router.post(
    "/v1/customers",
    operation_id="create_customer",
    status_code=status.HTTP_201_CREATED,
    response_model=CustomerPublic,
    responses=responses(
        UnknownAttribute, ValidationFailed, InvalidCharacters, InvalidRequest, Conflict
    ),
)
def create_customer(
    request: Request,
    body: CustomerCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CustomerWriter,
) -> dict:
    """Store a new customer; every value is validated, normalised and encrypted."""
    customer, names = service.create_customer(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attributes=body.attributes,
        external_id=body.external_id,
        by=principal.caller,
    )
    return schemas.to_public(customer, names)


@router.patch(
    "/v1/customers/{customer_id}",
    operation_id="rectify_customer",
    response_model=CustomerPublic,
    responses=responses(
        CustomerNotFound,
        CustomerErased,
        UnknownAttribute,
        ValidationFailed,
        InvalidCharacters,
        Conflict,
    ),
)
def rectify_customer(
    request: Request,
    customer_id: UUID,
    body: CustomerUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CustomerWriter,
) -> dict:
    """Rectify attributes (GDPR Art. 16); ``null`` removes an attribute."""
    customer, names = service.rectify(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=customer_id,
        attributes=body.attributes,
        by=principal.caller,
    )
    return schemas.to_public(customer, names)


@router.post(
    "/v1/customers/import",
    operation_id="import_customers",
    response_model=ImportResult,
    responses=responses(importer.TooManyLines, importer.ImportInProgress, PayloadTooLarge),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "description": "one customer per line: {external_id?, attributes, consents?}",
        }
    },
)
async def import_customers(
    request: Request,
    runtime: RuntimeDep,
    bearer: Annotated[Bearer, Security(bearer_for, scopes=[Scope.CUSTOMERS_WRITE.value])],
) -> dict:
    """Bulk import (NDJSON): good lines are stored, bad lines are reported by line number.

    The body is read as it arrives and stored in chunks of up to 1,000 lines, each committed on
    its own. One import per client at a time: a second one answers 409 ``import_in_progress``.
    An import that stops midway (too many lines, body too large) keeps the chunks committed
    before; its error body carries ``report``, the counts and errors of what was stored."""
    principal = await runtime.transaction(check_bearer, runtime=runtime, bearer=bearer)
    report = importer.ImportReport()
    with importer.one_import_per_client(principal.client_id):
        try:
            await _stream(request, runtime, bearer, principal, report)
        except VaultError as exc:
            exc.extra["report"] = report.as_dict()
            raise
        except ClientDisconnect:
            log.info("import %s: the client went away", principal.request_id)
    return report.as_dict()


# Over HTTP a chunk's store transaction holds the one SQLite writer (and its DB thread) while
# gated reads wait: 200 lines keep that under ~20 ms here (1,000 lines: ~100-300 ms, the reads'
# p99 went past a second under a running import).
HTTP_CHUNK_LINES = 200


async def _stream(
    request: Request,
    runtime: Runtime,
    bearer: Bearer,
    principal: Principal,
    report: importer.ImportReport,
) -> None:
    lines = importer.LineSplitter(
        max_lines=runtime.settings.max_import_lines, chunk_lines=HTTP_CHUNK_LINES
    )
    async for piece in request.stream():
        for chunk in lines.feed(piece):
            await _import_chunk(runtime, bearer, principal, chunk, report)
    for chunk in lines.finish():
        await _import_chunk(runtime, bearer, principal, chunk, report)


async def _import_chunk(
    runtime: Runtime,
    bearer: Bearer,
    principal: Principal,
    chunk: importer.Chunk,
    report: importer.ImportReport,
) -> None:
    # Validation, encryption and receipts off the database thread, then one short transaction:
    # other requests wait at most for one chunk's inserts.
    prepared = await run_in_threadpool(
        importer.prepare_chunk,
        envelope=runtime.envelope,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        chunk=chunk,
        by=principal.caller,
        may_write_consent=Scope.CONSENT_WRITE.value in principal.scopes,
    )
    stored = await runtime.transaction(_store, runtime=runtime, bearer=bearer, prepared=prepared)
    report.merge(stored)  # committed


def _store(
    *, session: Session, runtime: Runtime, bearer: Bearer, prepared: importer.PreparedChunk
) -> importer.ImportReport:
    check_bearer(session=session, runtime=runtime, bearer=bearer)  # still enabled, still allowed
    stored = importer.ImportReport()
    importer.store_chunk(session=session, prepared=prepared, report=stored)
    return stored


@router.post(
    "/v1/customers/lookup",
    operation_id="lookup_customer",
    response_model=LookupResult,
    responses=responses(CustomerNotFound, InvalidRequest, ValidationFailed, InvalidCharacters),
)
def lookup_customer(
    request: Request,
    body: LookupRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: CustomerWriter,
) -> LookupResult:
    """Find a customer by e-mail, phone, loyalty number or external id (blind index)."""
    cid = service.lookup(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attribute=body.attribute,
        value=body.value,
        by=principal.caller,
    )
    return LookupResult(id=cid)
