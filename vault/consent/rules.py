"""The consent rule, pure: project the last decision from the ledger and judge it.

- ``consent_state`` holds the *deciding* event per (customer, purpose): the one with the latest
  ``occurred_at`` (ties: the one recorded last). :func:`apply` is that rule for one event and
  :func:`replay` folds it over the ledger, so the projection written live and the one rebuilt
  from the ledger are equal by construction. A late event (older ``occurred_at`` than the
  current decision, e.g. from an offline store terminal) is kept but decides nothing.
- The projection stores the *raw* last decision. :func:`effective_status` judges it against the
  purpose's current rules at read time — double opt-in, TTL expiry, reconsent after a version
  bump — so nothing depends on a background job having run.

No database, no clock: every function takes plain values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from vault.consent.models import ConsentStatus, EffectiveStatus
from vault.policy import Purpose

CLOCK_SKEW = timedelta(minutes=2)  # how far ahead of the vault's clock a statement may lie
_COUNTING = frozenset({ConsentStatus.GRANTED, ConsentStatus.CONFIRMED})


class StateLike(Protocol):
    status: str
    version: int
    granted_at: datetime | None
    decided_at: datetime


class EventLike(Protocol):
    id: UUID
    status: str
    purpose_version: int
    occurred_at: datetime


@dataclass(frozen=True)
class Projection:
    """The values of one ``consent_state`` row, as the ledger determines them."""

    status: str
    version: int
    granted_at: datetime | None
    decided_at: datetime
    event_id: UUID


def as_projection(row: StateLike | None) -> Projection | None:
    """The projection values of a ``consent_state`` row (or of a :class:`Projection`)."""
    if row is None:
        return None
    return Projection(
        status=row.status,
        version=row.version,
        granted_at=row.granted_at,
        decided_at=row.decided_at,
        event_id=row.event_id,  # type: ignore[attr-defined]
    )


def apply(current: Projection | None, event: EventLike) -> tuple[Projection | None, bool]:
    """The projection after ``event``, and whether the event decided anything.

    An event older than the current decision (``occurred_at`` earlier) is late: it stays in the
    ledger but the decision stands. Ties go to the event recorded later."""
    if current is not None and event.occurred_at < current.decided_at:
        return current, False
    granted_at = event.occurred_at if event.status in _COUNTING else None
    return (
        Projection(
            status=event.status,
            version=event.purpose_version,
            granted_at=granted_at,
            decided_at=event.occurred_at,
            event_id=event.id,
        ),
        True,
    )


def replay(events: Iterable[EventLike]) -> Projection | None:
    """Fold the events of one (customer, purpose), in ``(occurred_at, seq)`` order."""
    projection: Projection | None = None
    for event in events:
        projection, _ = apply(projection, event)
    return projection


def expires_at(state: StateLike | None, purpose: Purpose) -> datetime | None:
    if state is None or state.status not in _COUNTING or not purpose.consent_ttl_days:
        return None
    start = state.granted_at or state.decided_at
    return start + timedelta(days=purpose.consent_ttl_days)


def effective_status(state: StateLike | None, purpose: Purpose, now: datetime) -> str:
    """What the last decision means now under the purpose's current rules.

    ``granted`` only for a grant (confirmed if the purpose needs double opt-in) of a version
    that still counts and not past ``consent_ttl_days``; otherwise the reason it does not
    count: ``pending_confirmation``, ``withdrawn``, ``refused``, ``expired``,
    ``reconsent_required`` (the purpose was raised to a new version with ``reconsent``) or
    ``none`` (never decided)."""
    if state is None:
        return EffectiveStatus.NONE
    status = state.status
    if status in (ConsentStatus.WITHDRAWN, ConsentStatus.REFUSED, ConsentStatus.EXPIRED):
        return status
    if purpose.reconsent and state.version < purpose.version:
        return EffectiveStatus.RECONSENT_REQUIRED
    if status == ConsentStatus.PENDING_CONFIRMATION:
        return EffectiveStatus.PENDING_CONFIRMATION
    if status == ConsentStatus.GRANTED and purpose.double_opt_in:
        # granted before the purpose required double opt-in: it needs a confirmation now
        return EffectiveStatus.PENDING_CONFIRMATION
    if status in _COUNTING:
        end = expires_at(state, purpose)
        if end is not None and end < now:
            return EffectiveStatus.EXPIRED
        return EffectiveStatus.GRANTED
    return EffectiveStatus.NONE  # a status this code does not know never counts


@dataclass(frozen=True)
class EffectiveConsent:
    purpose: str
    status: str
    version: int | None
    updated_at: datetime | None
    expires_at: datetime | None


def effective(state: StateLike | None, purpose: Purpose, now: datetime) -> EffectiveConsent:
    return EffectiveConsent(
        purpose=purpose.id,
        status=effective_status(state, purpose, now),
        version=state.version if state is not None else purpose.version,
        updated_at=state.decided_at if state is not None else None,
        expires_at=expires_at(state, purpose),
    )
