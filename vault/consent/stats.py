"""Counts of consent statements for the privacy office's charts (read only, no PII).

One grouped query over ``consent_event``: statements per purpose, channel (touchpoint), status
and ISO week (Monday, UTC) of ``occurred_at``, in a window of whole weeks. The week is cut in
SQL (SQLite: ``date(t, 'weekday 0', '-6 days')``; PostgreSQL: ``date_trunc('week', ...)``) so a
large ledger is counted in the database, not in Python. The ledger holds no clear PII, so the
counts are the same before and after any erasure.

:func:`granted_customers` is the SQL form of "has an effective grant now" (the projection,
as the audience query reads it), for counts other domains make over it (the preference rates).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Select, cast, func, select
from sqlmodel import Session

from vault.consent.models import ConsentEvent, ConsentState
from vault.policy import Purpose


@dataclass(frozen=True, slots=True)
class StatementCount:
    purpose: str
    channel: str
    status: str
    week: date  # the Monday (UTC) of the ISO week
    count: int


def week_start(moment: datetime | date) -> date:
    """The Monday of the ISO week ``moment`` (UTC) lies in."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def _week(session: Session) -> Any:
    col = ConsentEvent.occurred_at
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.date_trunc("week", func.timezone("UTC", col)), Date)
    return func.date(col, "weekday 0", "-6 days")


def statement_counts(
    *, session: Session, since: datetime, until: datetime, purpose: str | None = None
) -> list[StatementCount]:
    """Statements with ``since <= occurred_at < until``, counted per purpose, channel, status
    and week."""
    t = ConsentEvent
    week = _week(session).label("week")
    stmt = (
        select(t.purpose, t.channel, t.status, week, func.count())
        .where(t.occurred_at >= since, t.occurred_at < until)
        .group_by(t.purpose, t.channel, t.status, week)
    )
    if purpose is not None:
        stmt = stmt.where(t.purpose == purpose)
    out = []
    for p, channel, status, w, n in session.execute(stmt):
        w = date.fromisoformat(w) if isinstance(w, str) else w
        out.append(StatementCount(p, channel, status, w, n))
    return out


def granted_customers(purpose: Purpose, now: datetime) -> Select[Any]:
    """``SELECT customer_id`` of every customer whose consent to ``purpose`` counts at ``now``:
    a grant (only a confirmed one under double opt-in) of a version that still counts, not past
    ``consent_ttl_days`` (:func:`vault.consent.rules.effective_status` in SQL)."""
    s = ConsentState
    counting = ("confirmed",) if purpose.double_opt_in else ("granted", "confirmed")
    stmt = select(s.customer_id).where(s.purpose == purpose.id, s.status.in_(counting))
    if purpose.reconsent:
        stmt = stmt.where(s.version >= purpose.version)
    if purpose.consent_ttl_days:
        start = func.coalesce(s.granted_at, s.decided_at)
        stmt = stmt.where(start >= now - timedelta(days=purpose.consent_ttl_days))
    return stmt
