"""Tables of the self-service page: single-use magic links and server-side sessions.

Neither table holds a usable secret: links and sessions are identified by the SHA-256 of a
random 256-bit token that only the customer's browser (or the link in the e-mail) holds.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlmodel import Field, SQLModel

from vault.db import UTCDateTime, utcnow


class SelfserviceLink(SQLModel, table=True):
    """A magic link to /me: valid for a short time, usable once."""

    __tablename__ = "selfservice_link"

    token_hash: str = Field(primary_key=True, max_length=64)
    customer_id: UUID = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    issued_by: str = Field(max_length=80)
    # who started it (``customer``, ``client:<id>``, ``staff:<id>``, ``cli``): its session's origin
    origin: str = Field(default="", max_length=80)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def __repr__(self) -> str:
        return f"SelfserviceLink(customer_id={self.customer_id}, ***)"


class SelfserviceSession(SQLModel, table=True):
    """A customer's browser session. Ends at logout, after ``idle`` without a request, at
    ``expires_at`` (absolute), and when the customer is erased."""

    __tablename__ = "selfservice_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    customer_id: UUID = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # Purposes refused because the first request carried Sec-GPC: 1 (shown once as a notice).
    gpc_refused: str = Field(default="", max_length=2000)
    # who started it (the link's origin): evidence of every consent change made in it
    origin: str = Field(default="", max_length=80)

    def __repr__(self) -> str:
        return f"SelfserviceSession(customer_id={self.customer_id}, ***)"
