from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from vault.db import UTCDateTime, utcnow


class Client(SQLModel, table=True):
    """An internal app (newsletter tool, CRM, app backend) allowed to call the API."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    secret_hash: str = Field(max_length=200)
    scopes: str = Field(max_length=1000)
    purposes: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def __repr__(self) -> str:
        return f"Client(id={self.id!r}, name={self.name!r}, ***)"


class ClientCreate(BaseModel):
    name: str
    scopes: list[str]
    purposes: list[str] = []


class ClientPublic(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    purposes: list[str]
    created_at: datetime


class ClientCreated(ClientPublic):
    client_secret: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str
