"""The mail outbox: what other domains call to send a customer a mail, and what erasure and
retention remove.

:func:`enqueue` renders the template (:mod:`vault.mail.render`) and writes one ``mail_outbox``
row in the caller's transaction, so the mail goes out if and only if the change that causes it
commits. The recipient, subject, parts and extra headers are sealed under the customer's data
key (associated data: the customer and the mail id); the row itself holds ids, the template
name, the language, times and the delivery state. :mod:`vault.mail.delivery` sends it.

Erasure (:func:`shred`, called by :mod:`vault.dsr.erasure` like every domain's shred) deletes
the customer's mails, sent or not, and, once the erasure has committed, their mail drop files.
The data key the ciphertexts were sealed under is destroyed by the same erasure, so a backup
that still holds a row holds nothing readable. :func:`purge` deletes finished mails (and their
drop files) after ``VAULT_MAIL_RETENTION_DAYS``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import orjson
from sqlalchemy import and_, delete, exists, func, insert, select
from sqlmodel import Session

from vault.config import Settings
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.db import after_commit, utcnow
from vault.mail import drop
from vault.mail.models import FINISHED, OPEN, MailMessage, MailStatus
from vault.mail.render import language_of, render, template_version

_M = MailMessage.__table__
# Headers a caller may add (e.g. List-Unsubscribe for the marketing purposes' mails); the
# others are the vault's to set.
EXTRA_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post", "list-id"})
# Set after a commit that enqueued mail: a deliverer in this process wakes at once instead of
# at its next poll (others find the row when they poll).
WAKE = threading.Event()


@dataclass(frozen=True, repr=False)
class Message:
    """A decrypted mail: only for the moment it is sent or shown."""

    id: UUID
    customer_id: UUID
    to: str
    subject: str
    text: str
    html: str
    created_at: datetime
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Message(id={self.id}, ***)"


def _attribute(mail_id: UUID) -> str:
    # the associated data of the seal: a ciphertext moved to another row does not open
    return f"mail/{mail_id}"


def check_recipient(to: str) -> str:
    if "\r" in to or "\n" in to or "," in to:
        raise ValueError("one recipient address, one line")
    try:
        return str(Address(addr_spec=to.strip()))
    except (ValueError, IndexError):
        raise ValueError("not an e-mail address") from None


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if name.lower() not in EXTRA_HEADERS:
            raise ValueError(f"header {name!r} is not one a caller may set")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} must be one line")
        out[name] = value
    return out


def enqueue(
    session: Session,
    *,
    envelope: Envelope,
    customer_id: UUID,
    to: str,
    template: str,
    language: str | None,
    context: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> UUID:
    """Queue one mail to a customer in the caller's transaction; returns its id.

    Locks the customer's row first (404 unknown, 410 erased), like every writer of a customer,
    so an erasure running at the same time either deletes this mail or refuses it. ``language``
    falls back to German when there is no template in it; ``context`` must give every variable
    the template uses; ``headers`` may only be the list headers of :data:`EXTRA_HEADERS`."""
    now = now or utcnow()
    recipient = check_recipient(to)
    extra = _check_headers(headers)
    rendered = render(template, language or "", dict(context))
    customer = customers_service.lock_customer(session, customer_id)
    key = customers_service.data_key(envelope, customer)
    mail_id = uuid4()
    sealed = key.encrypt(
        _attribute(mail_id),
        orjson.dumps(
            {
                "to": recipient,
                "subject": rendered.subject,
                "text": rendered.text,
                "html": rendered.html,
                "headers": extra,
            }
        ),
    )
    session.execute(
        insert(_M).values(
            id=mail_id,
            customer_id=customer_id,
            template=template,
            template_version=template_version(template, language or ""),
            language=language_of(language),
            status=MailStatus.PENDING.value,
            message_ciphertext=sealed,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    after_commit(session, WAKE.set)
    return mail_id


def open_message(session: Session, envelope: Envelope, row: Any) -> Message:
    """Decrypt one ``mail_outbox`` row (``CustomerErased`` or ``DecryptionError`` if its
    customer's key is gone)."""
    customer = customers_service.get_customer(session, row.customer_id, allow_erased=True)
    key = customers_service.data_key(envelope, customer)
    doc = orjson.loads(key.decrypt(_attribute(row.id), row.message_ciphertext))
    return Message(
        id=row.id,
        customer_id=row.customer_id,
        to=doc["to"],
        subject=doc["subject"],
        text=doc["text"],
        html=doc["html"],
        created_at=row.created_at,
        headers=doc.get("headers") or {},
    )


def sender_address(settings: Settings) -> str:
    """The envelope sender (``MAIL FROM``): the address of ``VAULT_MAIL_FROM``."""
    return parseaddr(settings.resolved_mail_from)[1]


def compose(message: Message, settings: Settings) -> EmailMessage:
    """The RFC 5322 message: text and HTML alternatives, ``Message-ID`` from the mail id (the
    same on every retry, so a receiver can tell a duplicate), ``Auto-Submitted`` (RFC 3834:
    no vacation replies to a machine)."""
    msg = EmailMessage()
    msg["From"] = settings.resolved_mail_from
    msg["To"] = message.to
    if settings.mail_reply_to:
        msg["Reply-To"] = settings.mail_reply_to
    msg["Subject"] = message.subject
    msg["Date"] = format_datetime(message.created_at)
    domain = sender_address(settings).rpartition("@")[2] or "localhost"
    msg["Message-ID"] = f"<{message.id}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in message.headers.items():
        msg[name] = value
    msg.set_content(message.text)
    msg.add_alternative(message.html, subtype="html")
    return msg


# --- erasure and retention --------------------------------------------------------------------


def drop_dir(settings: Settings) -> Path:
    """The mail drop's directory (``<data dir>/mail``), whose files an erasure removes."""
    return drop.drop_dir(settings)


def shred_counts(session: Session, ids: Sequence[UUID]) -> dict[UUID, int]:
    """How many mails :func:`shred` is about to delete per customer (erasure certificates)."""
    out = {cid: 0 for cid in ids}
    for cid, n in session.connection().execute(
        select(_M.c.customer_id, func.count())
        .where(_M.c.customer_id.in_(ids))
        .group_by(_M.c.customer_id)
    ):
        out[cid] = n
    return out


def shred(session: Session, ids: Sequence[UUID], *, drop_dir: Path | None) -> list[UUID]:
    """Erasure: delete every mail of these customers, sent or not; once the caller's
    transaction has committed, delete their mail drop files too. Returns the mail ids."""
    conn = session.connection()
    mail_ids = list(conn.execute(select(_M.c.id).where(_M.c.customer_id.in_(ids))).scalars())
    if mail_ids:
        conn.execute(delete(_M).where(_M.c.customer_id.in_(ids)))
        after_commit(session, partial(drop.remove, drop_dir, mail_ids))
    return mail_ids


def _expired(now: datetime, retention: timedelta) -> Any:
    return and_(_M.c.status.in_(FINISHED), _M.c.finished_at < now - retention)


def any_expired(session: Session, *, now: datetime, retention: timedelta) -> bool:
    """Whether :func:`purge` has anything to do (a read: no write lock for nothing)."""
    return bool(session.execute(select(exists().where(_expired(now, retention)))).scalar())


def purge(
    session: Session, *, now: datetime, retention: timedelta, drop_dir: Path | None, limit: int
) -> int:
    """One retention batch: delete up to ``limit`` mails that finished (sent, bounced, failed)
    more than ``retention`` ago, and (after commit) their drop files. Returns how many."""
    conn = session.connection()
    old = _expired(now, retention)
    ids = list(conn.execute(select(_M.c.id).where(old).limit(limit)).scalars())
    if ids:
        conn.execute(delete(_M).where(_M.c.id.in_(ids), old))
        after_commit(session, partial(drop.remove, drop_dir, ids))
    return len(ids)


# --- reads (CLI, metrics) -------------------------------------------------------------------


def counts(session: Session) -> dict[str, int]:
    """Mails per state (every state, zeros included)."""
    out = {s.value: 0 for s in MailStatus}
    for status, n in session.execute(select(_M.c.status, func.count()).group_by(_M.c.status)):
        out[status] = n
    return out


def oldest_open(session: Session) -> datetime | None:
    """When the oldest mail still waiting to be sent was queued (None: none waits)."""
    return session.execute(
        select(func.min(_M.c.created_at)).where(_M.c.status.in_(OPEN))
    ).scalar_one_or_none()


def list_mails(
    session: Session,
    *,
    status: str | None = None,
    customer_id: UUID | None = None,
    limit: int = 50,
) -> list[MailMessage]:
    """The newest mails first."""
    query = select(MailMessage).order_by(MailMessage.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(MailMessage.status == status)
    if customer_id is not None:
        query = query.where(MailMessage.customer_id == customer_id)
    return list(session.execute(query).scalars())
