"""The privacy office's queries: the request queue, one customer's rights, consent rates and
delivery health. Read only; every change the office makes goes through the DSR services
(:mod:`vault.dsr.requests`, :mod:`vault.dsr.rights`, :mod:`vault.dsr.erasure`), which audit it
with the staff member's ``Caller`` (``staff:<id>``).

- **Queue**: open requests by deadline, overdue ones first and flagged, with the days left (or
  over). Closed requests on demand.
- **Rates** (:func:`consent_rates`): statements of the consent ledger per purpose, touchpoint
  (channel) and ISO week, from :mod:`vault.consent.stats`. The *consent rate* of a group is
  yes / (yes + no): yes = ``granted`` and ``pending_confirmation`` statements (a double opt-in
  yes waits for its confirmation), no = ``refused``. Withdrawals, confirmations and expiries are
  counted beside it, not in it. Weeks are ISO weeks in UTC.
- **Preference rates** (:func:`preference_rates`, from :mod:`vault.preferences.stats`): per
  purpose with topics, the customers who keep each topic on against those who switched it off
  (among those the purpose may contact now: an effective grant for a consent purpose); and the
  changes of the preference ledger per touchpoint and ISO week of the same window, by what
  changed (contact channels, topics, frequency, pause).
- **Delivery health**: webhook deliveries (:mod:`vault.events.health`) and the mail outbox
  (:mod:`vault.mail.outbox`): counts by state, the oldest one still waiting, the last failures
  (short error codes only; the mail's recipient and text stay sealed).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlmodel import Session

from vault.consent import stats as consent_stats
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.dsr import notes as dsr_notes
from vault.dsr import requests as dsr_requests
from vault.dsr import rights as dsr_rights
from vault.dsr.schemas import RequestStatus
from vault.events import health as events_health
from vault.mail import outbox as mail_outbox
from vault.policy import Policy
from vault.preferences import stats as preference_stats

QUEUE_LIMIT = 500
DEFAULT_WEEKS = 12
MAX_WEEKS = 104
# the ledger statuses the charts count, in the order they are stacked
SERIES = ("granted", "pending_confirmation", "confirmed", "refused", "withdrawn", "expired")
YES = ("granted", "pending_confirmation")
NO = ("refused",)
CHANNELS = ("web", "app", "store", "call_center", "email", "api", "selfservice")
MAIL_FAILED = ("retrying", "bounced", "failed")


# --- the request queue -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: UUID
    customer_id: UUID
    kind: str
    status: str
    received_at: datetime
    due_at: datetime
    extension_months: int
    closed_at: datetime | None
    close_reason: str | None
    overdue: bool
    days: int  # whole days left until due_at; negative: days overdue

    @property
    def open(self) -> bool:
        return self.status == RequestStatus.OPEN


def _days(due: datetime, now: datetime) -> int:
    seconds = (due - now).total_seconds()
    days = int(abs(seconds) // 86400)
    return days if seconds >= 0 else -(days + 1)


def _row(r: Any, now: datetime) -> QueueRow:
    overdue = r.status == RequestStatus.OPEN and r.due_at < now
    return QueueRow(
        r.id,
        r.customer_id,
        r.kind,
        r.status,
        r.received_at,
        r.due_at,
        r.extension_months,
        r.closed_at,
        r.close_reason,
        overdue,
        _days(r.due_at, now),
    )


def request_queue(
    *,
    session: Session,
    now: datetime,
    status: str | None = RequestStatus.OPEN,
    kind: str | None = None,
    customer_id: UUID | None = None,
    limit: int = QUEUE_LIMIT,
) -> list[QueueRow]:
    """Requests by deadline, overdue (open and past due) first; ``status`` None: all."""
    rows = dsr_requests.list_requests(
        session=session, status=status, kind=kind, customer_id=customer_id, now=now, limit=limit
    )
    out = [_row(r, now) for r in rows]
    out.sort(key=lambda q: (not q.overdue, not q.open, q.due_at, str(q.id)))
    return out


def request_detail(
    *, session: Session, envelope: Envelope, request_uuid: UUID, now: datetime
) -> dict[str, Any]:
    """One request as the API shows it (codes, and the sealed notes while the customer
    exists), plus ``days``; 404 ``dsr_request_not_found``."""
    row = dsr_requests.get_request(session, request_uuid)
    view = dsr_requests.request_public(row, dsr_notes.NoteReader(session, envelope), now)
    view["days"] = _days(row.due_at, now)
    return view


# --- one customer ------------------------------------------------------------------------------


def customer_view(
    *, session: Session, envelope: Envelope, policy: Policy, customer_id: UUID, now: datetime
) -> dict[str, Any]:
    """Where the customer stands (status, objections, legal hold, restriction, with notes),
    their requests, the objection scopes and the names (never values) of what is stored.
    404 unknown; an erased customer answers too (tombstone, codes only)."""
    customer = customers_service.get_customer(session, customer_id, allow_erased=True)
    rights = dsr_rights.rights_public(dsr_rights.RightsResult(customer), envelope)
    return {
        "rights": rights,
        "erased": customer.erased_at is not None,
        "requests": request_queue(
            session=session, now=now, status=None, customer_id=customer_id, limit=100
        ),
        "objection_scopes": dsr_rights.objection_scopes(policy),
        "stored_attributes": customers_service.stored_attribute_names(session, customer_id),
    }


# --- consent rates -----------------------------------------------------------------------------


def rate(counts: dict[str, int]) -> float | None:
    """yes / (yes + no), None when nobody was asked."""
    yes = sum(counts.get(s, 0) for s in YES)
    asked = yes + sum(counts.get(s, 0) for s in NO)
    return yes / asked if asked else None


@dataclass
class Rates:
    since: date  # first Monday in the window
    until: date  # the Monday after the window
    purpose: str | None
    by_purpose: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    by_channel: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    by_week: list[tuple[date, dict[str, int]]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for _, c in self.by_purpose)


def _ordered(known: tuple[str, ...] | list[str], seen: set[str]) -> list[str]:
    return [k for k in known if k in seen] + sorted(seen - set(known))


def consent_rates(
    *,
    session: Session,
    policy: Policy,
    now: datetime,
    weeks: int = DEFAULT_WEEKS,
    purpose: str | None = None,
) -> Rates:
    """Statements of the last ``weeks`` ISO weeks (the current one included) per purpose (every
    purpose, whatever ``purpose`` says), and per touchpoint and week (only ``purpose``'s, when
    one is given). Every week of the window is listed, empty ones too."""
    weeks = max(1, min(weeks, MAX_WEEKS))
    until = consent_stats.week_start(now) + timedelta(days=7)
    since = until - timedelta(days=7 * weeks)
    counts = consent_stats.statement_counts(
        session=session,
        since=datetime.combine(since, datetime.min.time(), tzinfo=now.tzinfo),
        until=datetime.combine(until, datetime.min.time(), tzinfo=now.tzinfo),
    )
    by_purpose: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_week: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in counts:
        by_purpose[c.purpose][c.status] += c.count
        if purpose is None or c.purpose == purpose:
            by_channel[c.channel][c.status] += c.count
            by_week[c.week][c.status] += c.count
    consent_purposes = [p.id for p in policy.purposes.values() if p.needs_consent]
    return Rates(
        since=since,
        until=until,
        purpose=purpose,
        by_purpose=[
            (p, dict(by_purpose.get(p, {}))) for p in _ordered(consent_purposes, set(by_purpose))
        ]
        + [(p, {}) for p in consent_purposes if p not in by_purpose],
        by_channel=[(c, dict(by_channel[c])) for c in _ordered(CHANNELS, set(by_channel))],
        by_week=[
            (since + timedelta(days=7 * i), dict(by_week.get(since + timedelta(days=7 * i), {})))
            for i in range(weeks)
        ],
    )


@dataclass
class PreferenceRates:
    since: date
    until: date
    purpose: str | None
    # (purpose, [(topic, {"on": n, "off": m})]) for every purpose that declares topics
    by_topic: list[tuple[str, list[tuple[str, dict[str, int]]]]] = field(default_factory=list)
    by_channel: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    by_week: list[tuple[date, dict[str, int]]] = field(default_factory=list)


def preference_rates(
    *,
    session: Session,
    policy: Policy,
    now: datetime,
    weeks: int = DEFAULT_WEEKS,
    purpose: str | None = None,
) -> PreferenceRates:
    """Topics on and off per purpose now, and the preference changes of the last ``weeks`` ISO
    weeks per touchpoint and week (of ``purpose``'s topics and frequency, when one is given),
    by part (:data:`vault.preferences.stats.PARTS`). Every week of the window is listed."""
    weeks = max(1, min(weeks, MAX_WEEKS))
    until = consent_stats.week_start(now) + timedelta(days=7)
    since = until - timedelta(days=7 * weeks)
    by_topic: dict[str, list[tuple[str, dict[str, int]]]] = {}
    for t in preference_stats.topic_counts(session=session, policy=policy, now=now):
        by_topic.setdefault(t.purpose, []).append((t.topic, {"on": t.on, "off": t.off}))
    counts = preference_stats.change_counts(
        session=session,
        since=datetime.combine(since, datetime.min.time(), tzinfo=now.tzinfo),
        until=datetime.combine(until, datetime.min.time(), tzinfo=now.tzinfo),
        purpose=purpose,
    )
    by_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_week: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in counts:
        for part, n in c.counts.items():
            by_channel[c.channel][part] += n
            by_week[c.week][part] += n
    return PreferenceRates(
        since=since,
        until=until,
        purpose=purpose,
        by_topic=list(by_topic.items()),
        by_channel=[(c, dict(by_channel[c])) for c in _ordered(CHANNELS, set(by_channel))],
        by_week=[
            (since + timedelta(days=7 * i), dict(by_week.get(since + timedelta(days=7 * i), {})))
            for i in range(weeks)
        ],
    )


# --- delivery health ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailHealth:
    counts: dict[str, int]
    oldest_open: datetime | None
    failures: list[Any]  # MailMessage rows: ids, template, status, attempts, error code


def delivery_health(*, session: Session, failures: int = 10) -> dict[str, Any]:
    """Webhook deliveries and mails: counts by state, oldest waiting, last failures."""
    mails = [
        m for s in MAIL_FAILED for m in mail_outbox.list_mails(session, status=s, limit=failures)
    ]
    mails.sort(key=lambda m: m.last_attempt_at or m.created_at, reverse=True)
    return {
        "webhooks": events_health.health(session, failures=failures),
        "mail": MailHealth(
            counts=mail_outbox.counts(session),
            oldest_open=mail_outbox.oldest_open(session),
            failures=mails[:failures],
        ),
    }
