"""Self-service links by mail: nobody but the customer's mailbox ever sees a link.

- An app (scope ``selfservice:issue``) or staff asks for a customer's link
  (:func:`mail_link`): the link is made and the ``selfservice_link`` mail queued in the same
  transaction, to the customer's stored e-mail address, in their ``preferred_language``. The
  caller gets the mail's id, never the link; a customer without an address: 409.
- Someone types an address into the form on /me (:func:`request_link`): the address is found
  through the blind index and, if it is a customer's, mailed a link (origin ``customer``). Known
  or not, the answer is the same page, and the route answers only after
  ``VAULT_SELFSERVICE_LINK_REQUEST_SECONDS`` from the start of the request (after the commit),
  so neither its bytes nor its time tell whether an address belongs to a customer.

The session a link opens keeps who started it (:func:`vault.selfservice.sessions.origin_of`);
consent changes made in it carry that as evidence ``session_origin``. Services never commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlmodel import Session

from vault.config import Settings
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.errors import VaultError
from vault.mail import outbox as mail_outbox
from vault.policy import Policy
from vault.policy.values import normalise
from vault.provenance import Caller
from vault.ratelimit import RateLimiter
from vault.selfservice import sessions
from vault.selfservice.errors import NoEmailAddress, NotAnEmailAddress

TEMPLATE = "selfservice_link"
EMAIL = "email"
LANGUAGE = "preferred_language"
MAX_ADDRESS = 320
# The audit actor of a link asked for on the /me form: whoever typed a customer's address.
FORM = "link_form"


@dataclass(frozen=True)
class Mailed:
    mail_id: UUID
    expires_at: datetime


def mail_link(
    *,
    session: Session,
    envelope: Envelope,
    settings: Settings,
    customer_id: UUID,
    by: Caller,
    origin: str | None = None,
    language: str | None = None,
    now: datetime | None = None,
) -> Mailed:
    """Make a link for the customer and queue it to their stored address (404 unknown, 410
    erased, 409 no address). ``language`` is used when the customer has no preferred one."""
    customer = customers_service.lock_customer(session, customer_id)
    values = customers_service.decrypt_values(
        session=session, envelope=envelope, customer=customer, names=[EMAIL, LANGUAGE]
    )
    address = values.get(EMAIL)
    if not isinstance(address, str) or not address:
        raise NoEmailAddress()
    link = sessions.issue_link(
        session=session,
        settings=settings,
        customer_id=customer_id,
        by=by,
        origin=origin,
        now=now,
    )
    preferred = values.get(LANGUAGE)
    mail_id = mail_outbox.enqueue(
        session,
        envelope=envelope,
        customer_id=customer_id,
        to=address,
        template=TEMPLATE,
        language=preferred if isinstance(preferred, str) else language,
        context={"url": link.url, "minutes": settings.selfservice_link_ttl_seconds // 60},
        now=now,
    )
    return Mailed(mail_id, link.expires_at)


def normalise_address(policy: Policy, raw: str) -> str:
    """The typed address as the blind index knows it (422 ``invalid_email_address``)."""
    if not raw or len(raw) > MAX_ADDRESS:
        raise NotAnEmailAddress()
    try:
        value = normalise(policy.attributes[EMAIL], raw.strip())
    except VaultError:
        raise NotAnEmailAddress() from None
    if not isinstance(value, str):
        raise NotAnEmailAddress()
    return value


def request_link(
    *,
    session: Session,
    envelope: Envelope,
    settings: Settings,
    limiter: RateLimiter,
    address: str,
    language: str,
    request_id: str | None = None,
) -> UUID | None:
    """The /me form: mail a link to ``address`` (normalised) if it is a customer's; the mail's
    id or None. Unknown, erased, or past the customer's own link budget: nothing is sent and
    nothing is said — the page answers the same in every case."""
    customer_id = customers_service.find(
        session=session, envelope=envelope, attribute=EMAIL, value=address
    )
    if customer_id is None:
        return None
    try:
        customers_service.get_customer(session, customer_id)
        limiter.hit("link_customer", str(customer_id))
    except VaultError:  # erased (410), or RateLimited: the customer's own budget is spent
        return None
    mailed = mail_link(
        session=session,
        envelope=envelope,
        settings=settings,
        customer_id=customer_id,
        by=Caller(FORM, request_id),
        origin=sessions.CUSTOMER_ORIGIN,
        language=language,
    )
    return mailed.mail_id


def answer_no_sooner_than(started: float, seconds: float) -> None:
    """Sleep until ``seconds`` after ``started`` (``time.monotonic()``); at once if later."""
    remaining = started + seconds - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
