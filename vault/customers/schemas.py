"""The customer API's shapes (ids and attribute names, never values), and the write answer.

Other domains name the customer row type and its status from here (``models`` is private)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import Field as PField
from pydantic_core import PydanticCustomError

from vault.customers.models import Customer as Customer
from vault.customers.models import CustomerStatus as CustomerStatus


class CustomerCreate(BaseModel):
    # an unknown top-level key ({"email": …} without "attributes") is a mistake, not an empty
    # customer: 422 extra_forbidden. Neither the key nor its value is echoed: pydantic's own
    # check would put the key into the error's ``loc``, and a key may be an e-mail address.
    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, Any] = PField(default_factory=dict)
    external_id: str | None = PField(None, min_length=1, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _no_other_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) - {"attributes", "external_id"}:
            raise PydanticCustomError(
                "extra_forbidden",
                "Only 'attributes' and 'external_id' may be given; attributes go inside "
                "'attributes'.",
            )
        return data


class CustomerUpdate(BaseModel):
    attributes: dict[str, Any]


class CustomerPublic(BaseModel):
    """What the write API returns: ids and attribute names, never values."""

    id: UUID
    status: str
    attributes: list[str]
    created_at: datetime
    updated_at: datetime


class LookupRequest(BaseModel):
    attribute: str = PField(max_length=64)
    value: str = PField(max_length=400)


class LookupResult(BaseModel):
    id: UUID


class ImportLineError(BaseModel):
    line: int
    error: str
    detail: str
    attribute: str | None = None


class ImportResult(BaseModel):
    received: int
    created: int
    consents: int
    rejected: int
    errors: list[ImportLineError]
    errors_truncated: bool


def to_public(customer: Customer, attributes: list[str]) -> dict:
    """The :class:`CustomerPublic` of a write, as plain data."""
    return {
        "id": customer.id,
        "status": customer.status,
        "attributes": attributes,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }
