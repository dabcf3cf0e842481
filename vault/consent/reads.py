"""Reading consent: the effective state per purpose, now (from the projection) or as of a past
instant (replayed from the ledger), and the ledger itself. Reads never write."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlmodel import Session

from vault.consent.errors import AsOfInFuture
from vault.consent.models import ConsentEvent
from vault.consent.rules import CLOCK_SKEW, EffectiveConsent, Projection, apply, effective
from vault.consent.store import consent_purposes, effective_states, events
from vault.customers import service as customers_service
from vault.customers.schemas import CustomerStatus
from vault.errors import CustomerErased
from vault.policy import Policy

HISTORY_MAX = 10_000  # most events one history request returns


def states_as_of(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    as_of: datetime,
    now: datetime,
    purposes: Iterable[str] | None = None,
) -> dict[str, EffectiveConsent]:
    """The effective consent at a past instant (GDPR Art. 7(1)), replayed from the ledger.

    Events count by when they occurred, not when the vault learnt of them; expiry is judged at
    ``as_of``. The purpose rules applied are those of the current policy."""
    if as_of > now + CLOCK_SKEW:
        raise AsOfInFuture()
    wanted = consent_purposes(policy, purposes)
    events = session.execute(
        select(ConsentEvent)
        .where(
            ConsentEvent.customer_id == customer_id,
            ConsentEvent.occurred_at <= as_of,
            ConsentEvent.purpose.in_([p.id for p in wanted]),
        )
        .order_by(ConsentEvent.occurred_at, ConsentEvent.seq)
    ).scalars()
    projections: dict[str, Projection | None] = {}
    for event in events:
        projections[event.purpose], _ = apply(projections.get(event.purpose), event)
    return {p.id: effective(projections.get(p.id), p, as_of) for p in wanted}


def read_consents(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    now: datetime,
    as_of: datetime | None = None,
) -> dict[str, EffectiveConsent]:
    """``GET /v1/customers/{id}/consents``: from the projection, or replayed ``as_of``.

    After an erasure the ledger stays as proof: ``as_of`` an instant before ``erased_at``
    still answers (Art. 7(1)); the current state and later instants answer 410."""
    customer = customers_service.get_customer(session, customer_id, allow_erased=True)
    if customer.status == CustomerStatus.ERASED and (
        as_of is None or customer.erased_at is None or as_of >= customer.erased_at
    ):
        raise CustomerErased()
    if as_of is None:
        return effective_states(session=session, policy=policy, customer_id=customer_id, now=now)
    return states_as_of(
        session=session, policy=policy, customer_id=customer_id, as_of=as_of, now=now
    )


def history(
    *,
    session: Session,
    customer_id: UUID,
    purpose: str | None = None,
    limit: int = 1000,
) -> list[ConsentEvent]:
    """The customer's ledger in decision order. Kept after erasure: it holds no clear PII."""
    customers_service.get_customer(session, customer_id, allow_erased=True)
    return events(session, customer_id, purpose=purpose, limit=limit)
