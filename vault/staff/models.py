"""Tables of the staff console: accounts and server-side sessions.

An account holds its password only as an Argon2id hash and its TOTP secret only sealed by the
KEK provider (:mod:`vault.staff.totp`). A session is identified by the SHA-256 of a random
256-bit token that only the staff member's browser holds.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from vault.db import UTCDateTime, utcnow


class StaffAccount(SQLModel, table=True):
    """A member of staff who signs in at /staff. Never deleted: a disabled account keeps its
    row, so the audit log's ``staff:<id>`` actors keep naming a known person's account."""

    __tablename__ = "staff_account"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=32)
    store: str | None = Field(default=None, max_length=100)
    password_hash: str = Field(max_length=200)
    totp_sealed: bytes
    # the last TOTP time step accepted: a code of this step or an earlier one is a replay
    totp_last_step: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    failed_logins: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reset_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def status(self) -> str:
        return "disabled" if self.disabled_at is not None else "active"

    def __repr__(self) -> str:
        return f"StaffAccount(id={self.id!r}, role={self.role!r}, ***)"


class StaffSession(SQLModel, table=True):
    """A staff member's browser session. Ends at logout, after ``VAULT_STAFF_IDLE_SECONDS``
    without a request, at ``expires_at`` (absolute), when the account is disabled or reset."""

    __tablename__ = "staff_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    staff_id: str = Field(foreign_key="staff_account.id", index=True, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)

    def __repr__(self) -> str:
        return f"StaffSession(staff_id={self.staff_id!r}, ***)"
