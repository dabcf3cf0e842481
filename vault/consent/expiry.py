"""``consent.expired``: tell downstream tools once when a grant has run past its TTL.

Expiry itself is judged at read time (:func:`vault.consent.rules.effective_status`); nothing
depends on this sweep having run. The worker calls :func:`sweep_expired` now and then, and the
outbox row's ``dedupe_key`` (one per deciding event) makes the announcement happen once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from vault.consent.models import ConsentState, ConsentStatus
from vault.consent.rules import effective_status, expires_at
from vault.customers import store as customers_store
from vault.db import try_advisory_lock
from vault.events.outbox import EventType, emit, emitted_keys
from vault.policy import Policy

# One sweeper at a time across workers (PostgreSQL advisory lock; the dispatcher's is ...7401).
_SWEEP_LOCK = 0x7661756C7402


def sweep_expired(*, session: Session, policy: Policy, now: datetime, limit: int = 1000) -> int:
    """Emit ``consent.expired`` once per grant that has run past its purpose's
    ``consent_ttl_days`` (the first time a worker observes it). Returns events emitted."""
    if not try_advisory_lock(session, _SWEEP_LOCK):
        return 0
    emitted = 0
    for purpose in policy.purposes.values():
        if not purpose.needs_consent or not purpose.consent_ttl_days or emitted >= limit:
            continue
        cutoff = now - timedelta(days=purpose.consent_ttl_days)
        started = func.coalesce(ConsentState.granted_at, ConsentState.decided_at)
        states = session.execute(
            select(ConsentState)
            .where(
                ConsentState.customer_id.in_(customers_store.not_erased_ids()),
                ConsentState.purpose == purpose.id,
                ConsentState.status.in_(
                    [ConsentStatus.GRANTED.value, ConsentStatus.CONFIRMED.value]
                ),
                started < cutoff,
            )
            .order_by(ConsentState.customer_id)
        ).scalars()
        batch = [s for s in states if effective_status(s, purpose, now) == "expired"]
        keys = {f"consent.expired:{s.event_id}": s for s in batch}
        seen = emitted_keys(session, list(keys))
        for key, state in keys.items():
            if key in seen or emitted >= limit:
                continue
            emit(
                session=session,
                type=EventType.CONSENT_EXPIRED,
                customer_id=state.customer_id,
                data={
                    "purpose": purpose.id,
                    "purpose_version": state.version,
                    "status": "expired",
                    "consent_event_id": state.event_id,
                    "expired_at": expires_at(state, purpose),
                },
                now=now,
                dedupe_key=key,
            )
            emitted += 1
    return emitted
