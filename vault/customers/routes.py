from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Request, Security, status
from sqlmodel import Session

from vault.auth.deps import Bearer, CustomerWriter, bearer_for, check_bearer
from vault.auth.scopes import Scope
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
    responses,
)
from vault.policy.errors import InvalidCharacters
from vault.runtime import RuntimeDep

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
    responses={
        **responses(InvalidRequest, PayloadTooLarge),
    },
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
    """Bulk import (NDJSON): good lines are stored, bad lines are reported by line number."""
    body = await request.body()
    lines = body.splitlines()
    if len(lines) > runtime.settings.max_import_lines:
        raise InvalidRequest(
            f"At most {runtime.settings.max_import_lines} lines per request.",
            code="too_many_lines",
        )
    return await runtime.transaction(
        _import,
        runtime=runtime,
        bearer=bearer,
        lines=lines,
    )


def _import(*, session: Session, runtime: RuntimeDep, bearer: Bearer, lines: list[bytes]) -> dict:
    principal = check_bearer(session=session, runtime=runtime, bearer=bearer)
    report = importer.ImportReport()
    for chunk in importer.chunks(lines):
        importer.import_chunk(
            session=session,
            envelope=runtime.envelope,
            policy=runtime.policy,
            signer=runtime.signer,
            settings=runtime.settings,
            chunk=chunk,
            report=report,
            by=principal.caller,
            may_write_consent=Scope.CONSENT_WRITE.value in principal.scopes,
        )
    return report.as_dict()


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
