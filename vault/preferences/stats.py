"""Counts of preferences for the privacy office's charts (read only, no PII, counted in SQL).

- :func:`topic_counts`: per purpose with topics and per topic, the customers the topic can
  reach and who keep it on, against those who switched it off. The population is the same for
  both: customers not erased and, for a consent purpose, with an effective grant now
  (:func:`vault.consent.stats.granted_customers`). *Off* = an explicit ``off`` choice in the
  projection (``preference_choice``); *on* = the rest (never switched off, or switched back on).
- :func:`change_counts`: the ledger (``preference_event``) per touchpoint (``channel``) and ISO
  week (Monday, UTC) of ``occurred_at``, one count per part a change touched (contact channels,
  topics, frequency, pause): a change touching two parts counts once in each. With ``purpose``:
  topics and frequency only when the change names that purpose; contact channels and the pause
  apply to every purpose and always count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, case, cast, func, select
from sqlmodel import Session

from vault.consent import stats as consent_stats
from vault.customers import store as customers_store
from vault.policy import Policy
from vault.preferences.models import ChoiceKind, PreferenceChoice, PreferenceEvent

# the parts of a change, in the order the charts stack them (keys of the change JSON)
PARTS = ("contact_channels", "topics", "frequency", "paused_until")


@dataclass(frozen=True, slots=True)
class TopicCount:
    purpose: str
    topic: str
    on: int
    off: int


@dataclass(frozen=True, slots=True)
class ChangeCount:
    channel: str
    week: date  # the Monday (UTC) of the ISO week
    counts: dict[str, int]  # part -> changes touching it (PARTS keys, zeros left out)


def topic_counts(*, session: Session, policy: Policy, now: datetime) -> list[TopicCount]:
    """Every topic of every purpose that declares topics, in policy order, zeros included."""
    Customer = customers_store.Customer
    out = []
    for purpose in policy.purposes.values():
        if not purpose.topics:
            continue
        population = select(Customer.id).where(Customer.erased_at.is_(None))
        if purpose.needs_consent:
            population = population.where(
                Customer.id.in_(consent_stats.granted_customers(purpose, now))
            )
        total = session.execute(select(func.count()).select_from(population.subquery())).scalar()
        c = PreferenceChoice
        off = dict(
            session.execute(
                select(c.name, func.count())
                .where(
                    c.purpose == purpose.id,
                    c.kind == ChoiceKind.TOPIC,
                    c.value == "off",
                    c.customer_id.in_(population),
                )
                .group_by(c.name)
            ).all()
        )
        for topic in purpose.topics:
            n = off.get(topic.id, 0)
            out.append(TopicCount(purpose.id, topic.id, (total or 0) - n, n))
    return out


def _week(session: Session) -> Any:
    col = PreferenceEvent.occurred_at
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.date_trunc("week", func.timezone("UTC", col)), Date)
    return func.date(col, "weekday 0", "-6 days")


def _has(session: Session, *path: str) -> Any:
    """The change names ``path`` (a JSON null counts: ``paused_until: null`` ends a pause)."""
    col = PreferenceEvent.change
    if session.get_bind().dialect.name == "postgresql":
        expr: Any = col.op("->")(path[0])
        for key in path[1:]:
            expr = expr.op("->")(key)
        return expr.is_not(None)
    return func.json_type(col, "$." + ".".join(path)).is_not(None)


def change_counts(
    *, session: Session, since: datetime, until: datetime, purpose: str | None = None
) -> list[ChangeCount]:
    """Changes with ``since <= occurred_at < until`` per channel and week, by part."""
    t = PreferenceEvent
    week = _week(session).label("week")
    parts = {
        "contact_channels": _has(session, "contact_channels"),
        "topics": _has(session, "topics", purpose) if purpose else _has(session, "topics"),
        "frequency": _has(session, "frequency", purpose) if purpose else _has(session, "frequency"),
        "paused_until": _has(session, "paused_until"),
    }
    sums = [func.sum(case((parts[k], 1), else_=0)) for k in PARTS]
    stmt = (
        select(t.channel, week, *sums)
        .where(t.occurred_at >= since, t.occurred_at < until)
        .group_by(t.channel, week)
    )
    out = []
    for channel, w, *counts in session.execute(stmt):
        w = date.fromisoformat(w) if isinstance(w, str) else w
        found = {k: int(n) for k, n in zip(PARTS, counts, strict=True) if n}
        if found:
            out.append(ChangeCount(channel, w, found))
    return out
