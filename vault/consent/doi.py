"""Double opt-in: the confirmation token of a pending grant and the mail that carries it.

Every door that records a double opt-in grant (the API, ``/me``, the import) calls
:func:`request_confirmation` in its transaction, right after the ``pending_confirmation``
event. The token (256 bits, stored only as its SHA-256, valid 7 days) goes either

- into a ``doi_confirmation`` mail to the customer's stored e-mail address, in their
  ``preferred_language`` (German when unset), queued with :func:`vault.mail.outbox.enqueue` in
  the same transaction; the token then exists only in that mail (:attr:`Delivery.MAIL`); or
- back to the calling app, when the client holds ``consent:confirm`` and sends its own mail
  (:attr:`Delivery.CALLER`); no vault mail then; or
- nowhere, when the customer has no stored e-mail address: the grant stays pending, no token is
  made, and the answer and the audit event say ``no_email`` (:attr:`Delivery.NO_EMAIL`).

The mail's link opens ``GET /confirm/{token}`` (:mod:`vault.selfservice.confirmation`), which
only shows what is being confirmed; its button (a POST) confirms. LG Stendal 22 S 87/20: the
mail names the purpose and the controller and nothing else: no advertising, no logo, no
welcome line.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlmodel import Session

from vault.config import Settings
from vault.consent import store as consent_store
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.mail import outbox as mail_outbox
from vault.policy import Policy, Purpose

CONFIRMATION_TTL = timedelta(days=7)
TEMPLATE = "doi_confirmation"
CONFIRM_PATH = "/confirm/"
EMAIL_ATTRIBUTE = "email"
LANGUAGE_ATTRIBUTE = "preferred_language"


class Delivery(StrEnum):
    """Where the token of a pending grant went (the write's ``confirmation_delivery``)."""

    MAIL = "mail"
    CALLER = "caller"
    NO_EMAIL = "no_email"


@dataclass(frozen=True, repr=False)
class Requested:
    delivery: Delivery
    token: str | None = None  # only for Delivery.CALLER
    mail_id: UUID | None = None

    def __repr__(self) -> str:
        return f"Requested(delivery={self.delivery}, mail_id={self.mail_id}, ***)"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def confirm_url(settings: Settings, token: str, lang: str | None = None) -> str:
    """The link of the confirmation mail; ``lang``: the page opens in the mail's language."""
    url = f"{settings.public_url.rstrip('/')}{CONFIRM_PATH}{token}"
    return f"{url}?lang={lang}" if lang else url


def _contact(
    session: Session, envelope: Envelope, customer_id: UUID
) -> tuple[str | None, str | None]:
    customer = customers_service.get_customer(session, customer_id)
    values = customers_service.decrypt_values(
        session=session,
        envelope=envelope,
        customer=customer,
        names=(EMAIL_ATTRIBUTE, LANGUAGE_ATTRIBUTE),
    )
    email = values.get(EMAIL_ATTRIBUTE)
    language = values.get(LANGUAGE_ATTRIBUTE)
    return (
        email if isinstance(email, str) and email else None,
        language if isinstance(language, str) else None,
    )


def mail_context(
    *, policy: Policy, purpose: Purpose, lang: str, url: str, expires_at: datetime
) -> dict[str, Any]:
    controller = policy.controller
    return {
        "purpose_title": purpose.title.get(lang),
        "purpose_description": purpose.description.get(lang),
        "controller_name": controller.get("name", ""),
        "controller_address": controller.get("address", ""),
        "controller_contact": controller.get("contact", ""),
        "url": url,
        "valid_days": CONFIRMATION_TTL.days,
        "expires_on": expires_at.strftime("%d.%m.%Y") if lang == "de" else f"{expires_at:%Y-%m-%d}",
    }


def request_confirmation(
    *,
    session: Session,
    policy: Policy,
    settings: Settings,
    envelope: Envelope | None,
    customer_id: UUID,
    purpose: Purpose,
    event_id: UUID,
    now: datetime,
    to_caller: bool = False,
    to: str | None = None,
    language: str | None = None,
) -> Requested:
    """Make the token of the pending grant ``event_id`` and send it (see the module doc).

    ``to`` and ``language`` may be given by a caller that already holds them in plaintext (the
    import); otherwise they are read from the customer's stored values."""
    expires_at = now + CONFIRMATION_TTL
    token = secrets.token_urlsafe(32)
    row: dict[str, Any] = {
        "token_hash": token_hash(token),
        "customer_id": customer_id,
        "purpose": purpose.id,
        "event_id": event_id,
        "created_at": now,
        "expires_at": expires_at,
        "mail_id": None,
    }
    if to_caller:
        consent_store.insert_confirmation(session, row)
        return Requested(Delivery.CALLER, token=token)
    if envelope is None:
        raise ValueError("a double opt-in grant needs the envelope to mail its confirmation")
    if to is None:
        to, stored_language = _contact(session, envelope, customer_id)
        language = language or stored_language
    if to is None:
        return Requested(Delivery.NO_EMAIL)
    lang = "en" if (language or "").lower().startswith("en") else "de"
    mail_id = mail_outbox.enqueue(
        session,
        envelope=envelope,
        customer_id=customer_id,
        to=to,
        template=TEMPLATE,
        language=lang,
        context=mail_context(
            policy=policy,
            purpose=purpose,
            lang=lang,
            url=confirm_url(settings, token, lang),
            expires_at=expires_at,
        ),
        now=now,
    )
    row["mail_id"] = mail_id
    consent_store.insert_confirmation(session, row)
    return Requested(Delivery.MAIL, mail_id=mail_id)
