"""The mail outbox: one row per mail to one customer.

Written by :func:`vault.mail.outbox.enqueue` in the transaction of the change that causes the
mail, delivered by :mod:`vault.mail.delivery`. The recipient, subject and rendered parts exist
only as ``message_ciphertext``: AES-256-GCM under the customer's data key, bound to the row's id,
so an erasure (which destroys that key and deletes the rows) leaves nothing readable, not even
in a backup. ``last_error`` is a short code (``smtp_550``, ``timeout`` ...), never the server's
text, which may quote the address.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from vault.db import Bytes, UTCDateTime, utcnow


class MailStatus(StrEnum):
    PENDING = "pending"  # not attempted yet
    RETRYING = "retrying"  # an attempt failed, another one is scheduled
    SENT = "sent"  # accepted by the SMTP server, or written to the mail drop
    BOUNCED = "bounced"  # refused for good (5xx for the recipient or the message): no retry
    FAILED = "failed"  # given up after VAULT_MAIL_MAX_ATTEMPTS attempts


OPEN = (MailStatus.PENDING.value, MailStatus.RETRYING.value)
FINISHED = (MailStatus.SENT.value, MailStatus.BOUNCED.value, MailStatus.FAILED.value)


class MailMessage(SQLModel, table=True):
    __tablename__ = "mail_outbox"
    __table_args__ = (
        Index("ix_mail_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_mail_outbox_finished_at", "finished_at"),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    customer_id: UUID = Field(foreign_key="customer.id", index=True)
    template: str = Field(max_length=64)
    # SHA-256 (first 16 hex) of the template's source files as rendered: which text went out
    template_version: str = Field(default="", max_length=16)
    language: str = Field(max_length=8)
    status: str = Field(default=MailStatus.PENDING, max_length=16)
    # JSON {"to", "subject", "text", "html", "headers"} sealed under the customer's DEK
    message_ciphertext: bytes = Field(sa_type=Bytes)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claimed_by: str | None = Field(default=None, max_length=64)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # when it was sent, bounced or given up; retention counts from here
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def __repr__(self) -> str:
        return f"MailMessage(id={self.id}, template={self.template}, status={self.status}, ***)"


class MailReceipt(SQLModel, table=True):
    """Proof that one mail left the vault, kept when the mail itself is purged or erased.

    Ids, the template and its version, the ``Message-ID``, the SHA-256 of the exact bytes handed
    to the SMTP server (or written to the mail drop) and when they were accepted: nothing of the
    recipient or the text, so it stays after the customer's erasure (the hash is of a message
    that held a random token: it proves a message, it reveals none). The consent dossier shows
    it for each double opt-in confirmation mail (BGH I ZR 164/09)."""

    __tablename__ = "mail_receipt"

    mail_id: UUID = Field(primary_key=True)
    customer_id: UUID = Field(index=True)
    template: str = Field(max_length=64)
    template_version: str = Field(max_length=16)
    language: str = Field(max_length=8)
    message_id: str = Field(max_length=255)
    sha256: str = Field(max_length=64)
    transport: str = Field(max_length=16)  # smtp | drop
    accepted_at: datetime = Field(sa_type=UTCDateTime)

    def __repr__(self) -> str:
        return f"MailReceipt(mail_id={self.mail_id}, template={self.template})"
