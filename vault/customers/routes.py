from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, status

from vault.auth.deps import require
from vault.auth.scopes import Scope
from vault.customers import service
from vault.customers.models import (
    CustomerCreate,
    CustomerPublic,
    CustomerUpdate,
    LookupRequest,
    LookupResult,
)
from vault.db import SessionDep
from vault.errors import (
    Conflict,
    CustomerErased,
    CustomerNotFound,
    Forbidden,
    InvalidRequest,
    NotAuthenticated,
    UnknownAttribute,
    ValidationFailed,
    responses,
)
from vault.runtime import RuntimeDep

router = APIRouter(prefix="/v1/customers", tags=["customers"])

_AUTH = (NotAuthenticated, Forbidden)


@router.post(
    "",
    operation_id="create_customer",
    status_code=status.HTTP_201_CREATED,
    response_model=CustomerPublic,
    responses=responses(*_AUTH, UnknownAttribute, ValidationFailed, InvalidRequest, Conflict),
)
def create_customer(
    request: Request,
    body: CustomerCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: require(Scope.CUSTOMERS_WRITE),
) -> dict:
    """Store a new customer; every value is validated, normalised and encrypted."""
    customer, names = service.create_customer(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attributes=body.attributes,
        external_id=body.external_id,
        actor=principal.actor,
        request_id=request.state.request_id,
    )
    return service.to_public(customer, names)


@router.patch(
    "/{customer_id}",
    operation_id="rectify_customer",
    response_model=CustomerPublic,
    responses=responses(
        *_AUTH, CustomerNotFound, CustomerErased, UnknownAttribute, ValidationFailed, Conflict
    ),
)
def rectify_customer(
    request: Request,
    customer_id: UUID,
    body: CustomerUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: require(Scope.CUSTOMERS_WRITE),
) -> dict:
    """Rectify attributes (GDPR Art. 16); ``null`` removes an attribute."""
    customer, names = service.rectify(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=customer_id,
        attributes=body.attributes,
        actor=principal.actor,
        request_id=request.state.request_id,
    )
    return service.to_public(customer, names)


@router.post(
    "/lookup",
    operation_id="lookup_customer",
    response_model=LookupResult,
    responses=responses(*_AUTH, CustomerNotFound, InvalidRequest, ValidationFailed),
)
def lookup_customer(
    request: Request,
    body: LookupRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: require(Scope.CUSTOMERS_WRITE),
) -> LookupResult:
    """Find a customer by e-mail, phone, loyalty number or external id (blind index)."""
    cid = service.lookup(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attribute=body.attribute,
        value=body.value,
        actor=principal.actor,
        request_id=request.state.request_id,
    )
    return LookupResult(id=cid)
