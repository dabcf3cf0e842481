from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel import Session

from vault.db import reader, transaction
from vault.mail import outbox
from vault.mail.delivery import Deliverer
from vault.mail.models import MailMessage
from vault.runtime import Runtime

LINK = "http://testserver/me/login/tok-5f2b9c0e7d1a4e3b"


def with_settings(runtime: Runtime, **update: Any) -> Runtime:
    """The same runtime (engine, keys) with other settings; ``smtp_url`` as a plain string."""
    if isinstance(update.get("smtp_url"), str):
        update["smtp_url"] = SecretStr(update["smtp_url"])
    return dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=update))


def smtp_runtime(runtime: Runtime, url: str, ca_file: Path | None = None) -> Runtime:
    return with_settings(runtime, smtp_url=url, smtp_ca_file=ca_file)


def enqueue(
    runtime: Runtime,
    customer_id: uuid.UUID,
    *,
    to: str = "erika@example.de",
    language: str = "de",
    note: str | None = LINK,
    **kwargs: Any,
) -> uuid.UUID:
    with transaction(runtime.engine) as s:  # commits and runs its after-commit hooks
        mail_id = outbox.enqueue(
            s,
            envelope=runtime.envelope,
            customer_id=customer_id,
            to=to,
            template="test_message",
            language=language,
            context={"note": note},
            **kwargs,
        )
    return mail_id


def mails(runtime: Runtime) -> list[MailMessage]:
    with Session(reader(runtime.engine)) as s:
        found = list(s.execute(select(MailMessage).order_by(MailMessage.created_at)).scalars())
        s.expunge_all()
        s.rollback()
    return found


def mail(runtime: Runtime, mail_id: uuid.UUID) -> MailMessage | None:
    with Session(reader(runtime.engine)) as s:
        found = s.get(MailMessage, mail_id)
        s.expunge_all()
        s.rollback()
    return found


def drain(deliverer: Deliverer, rounds: int = 50) -> int:
    """Run rounds until one finds nothing to do; returns the mails handled."""
    total = 0
    for _ in range(rounds):
        n = deliverer.run_once()
        if not n:
            return total
        total += n
    return total
