"""Response shapes of the access API (it has no tables: it reads customers and consent)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel
from pydantic import Field as PField


class DataRead(BaseModel):
    customer_id: UUID
    purpose: str
    attributes: dict[str, Any]


class AccessDenied(BaseModel):
    error: str
    detail: str
    attributes: list[str] | None = None


class PurposeTopic(BaseModel):
    id: str
    label: dict[str, str]
    description: dict[str, str]


class PurposePublic(BaseModel):
    id: str
    version: int
    legal_basis: str
    attributes: list[str]
    reduce: dict[str, str]
    double_opt_in: bool
    consent_ttl_days: int | None
    reconsent: bool
    gpc_opt_out: bool
    direct_marketing: bool
    recipients: list[dict[str, Any]]
    title: dict[str, str]
    description: dict[str, str]
    dpv: str | None
    tcf_purposes: list[int]
    contact_channels: list[str] = PField(
        [], description="how the purpose contacts customers (email, sms, push, post, phone)"
    )
    topics: list[PurposeTopic] = PField(
        [], description="what it writes about; customers may switch each topic off"
    )
    frequencies: list[str] = PField(
        [], description="how often a customer may choose to hear from it; the first is the default"
    )
