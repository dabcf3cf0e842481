"""Tables of the audit log: events (append-only, hash-chained), signed checkpoints and purges.

See :mod:`vault.audit.record`, :mod:`vault.audit.seal`, :mod:`vault.audit.verify` and
:mod:`vault.audit.purge` for the design.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from vault.db import Bytes, UTCDateTime, utcnow

# BIGINT on PostgreSQL; INTEGER (the rowid alias, so autoincrementing) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class AuditEvent(SQLModel, table=True):
    """One audited action. ``seq`` and ``hash`` are NULL until the sealer chains the row."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    seq: int | None = Field(default=None, sa_type=sa.BigInteger, unique=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_type: str = Field(max_length=16)
    actor_id: str | None = Field(default=None, max_length=200)
    action: str = Field(max_length=64)
    outcome: str = Field(max_length=16)
    customer_id: UUID | None = Field(default=None, index=True)
    purpose: str | None = Field(default=None, max_length=64)
    # Attribute names (never values), comma-separated; "" when none.
    attributes: str = Field(default="", max_length=4000)
    reason: str | None = Field(default=None, max_length=128)
    request_id: str | None = Field(default=None, max_length=64)
    # Canonical JSON (sorted keys, compact) of small non-PII metadata.
    details: str | None = Field(default=None, sa_type=sa.Text)
    hash: bytes | None = Field(default=None, sa_type=Bytes)


class AuditCheckpoint(SQLModel, table=True):
    """An Ed25519 signature over (seq, hash of the chain at seq, signed_at)."""

    __tablename__ = "audit_checkpoint"

    seq: int = Field(
        sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    hash: bytes = Field(sa_type=Bytes)
    signed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kid: str = Field(max_length=64)
    signature: bytes = Field(sa_type=Bytes)


class AuditPurge(SQLModel, table=True):
    """A retention purge: events with ``seq <= up_to_seq`` may be deleted (the triggers check
    this table), and checkpoint ``up_to_seq`` anchors the chain that remains."""

    __tablename__ = "audit_purge"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    up_to_seq: int = Field(sa_type=sa.BigInteger)
    purged_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deleted: int = Field(sa_type=sa.BigInteger)
