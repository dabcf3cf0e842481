from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from vault.db import UTCDateTime, utcnow


class Client(SQLModel, table=True):
    """An internal app (newsletter tool, CRM, app backend) allowed to call the API.

    A client is never removed: a deleted one keeps its row (``deleted_at`` set, its secret hash
    replaced by an unusable marker), so the audit log's ``client:<id>`` actors, the
    ``created_by`` of webhooks and the idempotency records keep naming a known client, and an
    id is never handed out twice. ``secret_version`` counts rotations; access tokens carry it
    (claim ``sv``), so a rotation also ends the tokens issued under the old secret.
    """

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    secret_hash: str = Field(max_length=200)
    scopes: str = Field(max_length=1000)
    purposes: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    secret_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    secret_rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def status(self) -> ClientStatus:
        if self.deleted_at is not None:
            return "deleted"
        return "disabled" if self.disabled_at is not None else "active"

    def __repr__(self) -> str:
        return f"Client(id={self.id!r}, name={self.name!r}, ***)"


ClientStatus = Literal["active", "disabled", "deleted"]


class ClientCreate(BaseModel):
    name: str
    scopes: list[str]
    purposes: list[str] = []


class ClientPublic(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    purposes: list[str]
    status: ClientStatus
    created_at: datetime
    disabled_at: datetime | None = None
    deleted_at: datetime | None = None
    secret_rotated_at: datetime | None = None


class ClientList(BaseModel):
    clients: list[ClientPublic]


class ClientCreated(ClientPublic):
    client_secret: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str
