"""What was sent: the receipts of mails that left the vault (see :class:`MailReceipt`).

For the consent dossier and the double opt-in evidence: a receipt outlives the mail's purge and
the customer's erasure, and holds no contact data.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import select
from sqlmodel import Session

from vault.mail.models import MailReceipt


def for_mails(session: Session, mail_ids: Iterable[UUID]) -> dict[UUID, MailReceipt]:
    """``{mail id: its receipt}`` for those of ``mail_ids`` that were sent."""
    ids = list(mail_ids)
    if not ids:
        return {}
    rows = session.execute(select(MailReceipt).where(MailReceipt.mail_id.in_(ids))).scalars()
    return {r.mail_id: r for r in rows}


def for_customer(session: Session, customer_id: UUID) -> list[MailReceipt]:
    """Every receipt of mails to one customer, oldest first."""
    rows = session.execute(
        select(MailReceipt)
        .where(MailReceipt.customer_id == customer_id)
        .order_by(MailReceipt.accepted_at)
    ).scalars()
    return list(rows)
