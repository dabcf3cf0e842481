"""Response shapes of the access API (it has no tables: it reads customers and consent)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel


class DataRead(BaseModel):
    customer_id: UUID
    purpose: str
    attributes: dict[str, Any]


class AccessDenied(BaseModel):
    error: str
    detail: str
    attributes: list[str] | None = None


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
