"""The customer's own filters: contact channels, topics, frequency and pause.

This is the service every door uses (the API in :mod:`vault.preferences.routes`, the /me forms,
the staff console). Services never commit; the caller's transaction does. The functions:

- :func:`current` ``(session=, policy=, customer_id=, now=, as_of=None) -> PreferenceView``:
  what the customer receives, defaults filled in and capped by consent; ``as_of`` replays the
  ledger (and the consent ledger) to a past instant. 404 unknown, 410 erased.
- :func:`change` ``(session=, policy=, customer_id=, change=, channel=, by=, actor="customer",
  evidence=None, now=None) -> ChangeResult``: validate a partial change (the PATCH shape:
  ``contact_channels``, ``topics``, ``frequency``, ``paused_until``), append it to the ledger,
  update the projection, audit it (``preference.changed``) and emit the ``preference.changed``
  webhook, all in the caller's transaction. ``channel`` is the touchpoint (a consent
  ``Channel``); ``selfservice`` only when ``by`` is the customer themself
  (:func:`vault.consent.service.customer_actor`), as for consent. The /me forms call it with
  ``channel="selfservice"``, ``by=visit.caller`` and evidence ``{"ip", "user_agent"}``.
- :func:`validate` ``(policy, change, now) -> dict``: the normalised change, or the 422 the
  change would get; for forms that want to check before writing.
- :func:`as_json` ``(view) -> dict``: the API shape of a :class:`PreferenceView`.
- :func:`purposes_with_choices` ``(policy) -> list[Purpose]``: the purposes a form shows
  (those that declare contact channels), in policy order; :func:`contact_channels` the channels
  the policy uses.
- :func:`record_of` ``(session=, policy=, customer_id=, now=, erased=False) -> dict``: the
  preferences part of the DSR export and of the consent dossier (current view, every change
  with touchpoint, actor and evidence, the reported contacts).
- :func:`history` ``(session=, customer_id=, limit=200) -> list[PreferenceEvent]``: the
  customer's changes, newest first, as the ledger holds them (for pages that show them in
  plain words: the staff counter's customer card).
- The plain-words sentence ("at most once a month, by e-mail, only about wine and recipes") is
  :func:`vault.selfservice.summary.summary` ``(view, purpose, lang)``: its texts live in the
  self-service catalogues.

What a view means (docs/preferences.md):

- ``contact_channels``: every contact channel some purpose uses; on unless switched off. One
  switch per channel for all purposes.
- ``topics``: per purpose that declares topics, each topic on unless switched off, and only
  while the purpose may be used at all: a consent purpose without an effective grant shows
  every topic off (never more than the consent allows), whatever was chosen.
- ``frequency``: per purpose that declares frequencies, the choice, else the first declared.
- ``paused_until``: no contact by any purpose before that instant (null: no pause).

Enforcement is not here: :func:`vault.policy.decision.decide_contact` (pure) decides with
:func:`vault.preferences.store.contact_facts`, and the audience query filters with
:class:`vault.preferences.store.ContactFilter` first (vault.access).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.consent import reads as consent_reads
from vault.consent.errors import ChannelNotAllowed
from vault.consent.evidence import clean_evidence
from vault.consent.rules import EffectiveConsent
from vault.consent.schemas import Channel
from vault.consent.service import customer_actor
from vault.customers import store as customers_store
from vault.db import utcnow
from vault.errors import InvalidRequest
from vault.events import outbox as events_outbox
from vault.events.outbox import EventType
from vault.policy import Policy, Purpose
from vault.policy.decision import WINDOW_ZONE
from vault.policy.errors import UnknownPurpose
from vault.preferences import rules, store
from vault.preferences.errors import (
    ContactChannelRequired,
    InvalidPauseDate,
    NothingToChange,
    PausedUntilInPast,
    UnknownContactChannel,
    UnknownFrequency,
    UnknownTopic,
)
from vault.provenance import Caller

CHANGE_KEYS = ("contact_channels", "topics", "frequency", "paused_until")


@dataclass(frozen=True)
class PreferenceView:
    """What one customer receives (defaults filled in, capped by consent)."""

    customer_id: UUID
    contact_channels: dict[str, bool]
    topics: dict[str, dict[str, bool]]
    frequency: dict[str, str]
    paused_until: datetime | None


class ChangeResult(NamedTuple):
    event_id: UUID
    change: dict[str, Any]
    view: PreferenceView


def contact_channels(policy: Policy) -> list[str]:
    """Every contact channel some purpose uses, in policy order."""
    out: list[str] = []
    for purpose in policy.purposes.values():
        out.extend(c.value for c in purpose.contact_channels if c.value not in out)
    return out


def purposes_with_choices(policy: Policy) -> list[Purpose]:
    """The purposes that contact the customer (declare contact channels), in policy order."""
    return [p for p in policy.purposes.values() if p.contact_channels]


def _may_use(purpose: Purpose, consents: Mapping[str, EffectiveConsent]) -> bool:
    if not purpose.needs_consent:
        return True
    consent = consents.get(purpose.id)
    return consent is not None and consent.status == "granted"


def view(
    policy: Policy,
    customer_id: UUID,
    choices: rules.Choices,
    consents: Mapping[str, EffectiveConsent],
) -> PreferenceView:
    """The view of explicit ``choices`` under ``policy`` and the effective ``consents``."""
    channels = {c: choices.contact_channels.get(c, True) for c in contact_channels(policy)}
    topics: dict[str, dict[str, bool]] = {}
    frequency: dict[str, str] = {}
    for purpose in policy.purposes.values():
        if purpose.topics:
            allowed = _may_use(purpose, consents)
            chosen = choices.topics.get(purpose.id, {})
            topics[purpose.id] = {t.id: allowed and chosen.get(t.id, True) for t in purpose.topics}
        if purpose.frequencies:
            chosen_freq = choices.frequency.get(purpose.id)
            frequency[purpose.id] = (
                chosen_freq if chosen_freq in purpose.frequencies else purpose.frequencies[0]
            )
    return PreferenceView(customer_id, channels, topics, frequency, choices.paused_until)


def current(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    now: datetime,
    as_of: datetime | None = None,
) -> PreferenceView:
    """The customer's preferences now (from the projection) or ``as_of`` a past instant
    (replayed from both ledgers). 404 unknown customer, 410 erased (``as_of`` before the
    erasure still answers), 422 ``as_of_in_future``."""
    consents = consent_reads.read_consents(
        session=session, policy=policy, customer_id=customer_id, now=now, as_of=as_of
    )
    if as_of is None:
        choices = store.read_choices(session, customer_id)
    else:
        choices = rules.replay(e.change for e in store.events(session, customer_id, until=as_of))
    return view(policy, customer_id, choices, consents)


def as_json(v: PreferenceView) -> dict[str, Any]:
    return {
        "customer_id": str(v.customer_id),
        "contact_channels": v.contact_channels,
        "topics": v.topics,
        "frequency": v.frequency,
        "paused_until": v.paused_until.isoformat() if v.paused_until is not None else None,
    }


def _purpose(policy: Policy, purpose_id: Any) -> Purpose:
    purpose = policy.purposes.get(purpose_id) if isinstance(purpose_id, str) else None
    if purpose is None:
        raise UnknownPurpose()
    return purpose


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{what} must be true or false.", code="invalid_preference_value")
    return value


def validate(policy: Policy, change: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The change as stored (plain JSON), every name one of the policy's; or the 422.

    ``contact_channels``: ``{channel: bool}``, channels some purpose uses
    (``unknown_contact_channel``); ``topics``: ``{purpose: {topic: bool}}``
    (``unknown_purpose``, ``unknown_topic``); ``frequency``: ``{purpose: name}`` among the
    purpose's frequencies (``unknown_frequency``); ``paused_until``: a future instant or None
    (``paused_until_in_past``). Keys left out change nothing; nothing at all is
    ``nothing_to_change``."""
    out: dict[str, Any] = {}
    known_channels = contact_channels(policy)
    if change.get("contact_channels") is not None:
        channels = {}
        for name, on in dict(change["contact_channels"]).items():
            if name not in known_channels:
                raise UnknownContactChannel()
            channels[name] = _flag(on, "contact_channels values")
        if channels:
            out["contact_channels"] = channels
    if change.get("topics") is not None:
        topics: dict[str, dict[str, bool]] = {}
        for pid, chosen in dict(change["topics"]).items():
            purpose = _purpose(policy, pid)
            if not isinstance(chosen, Mapping):
                raise InvalidRequest(
                    "topics maps each purpose to {topic: true|false}.",
                    code="invalid_preference_value",
                )
            for tid, on in chosen.items():
                if purpose.topic(tid) is None:
                    raise UnknownTopic()
                topics.setdefault(purpose.id, {})[tid] = _flag(on, "topics values")
        if topics:
            out["topics"] = topics
    if change.get("frequency") is not None:
        frequency = {}
        for pid, name in dict(change["frequency"]).items():
            purpose = _purpose(policy, pid)
            if not isinstance(name, str) or name not in purpose.frequencies:
                raise UnknownFrequency()
            frequency[purpose.id] = name
        if frequency:
            out["frequency"] = frequency
    if "paused_until" in change:
        until = change["paused_until"]
        if until is not None:
            if not isinstance(until, datetime) or until.tzinfo is None:
                raise InvalidRequest(
                    "paused_until must be an instant with a time zone, or null.",
                    code="invalid_preference_value",
                )
            if until <= now:
                raise PausedUntilInPast()
        out["paused_until"] = until.isoformat() if until is not None else None
    if not out:
        raise NothingToChange()
    return out


def _changed_names(change: Mapping[str, Any]) -> list[str]:
    names = [f"contact_channels.{c}" for c in change.get("contact_channels", {})]
    for pid, topics in change.get("topics", {}).items():
        names += [f"topics.{pid}.{t}" for t in topics]
    names += [f"frequency.{p}" for p in change.get("frequency", {})]
    if "paused_until" in change:
        names.append("paused_until")
    return names


def change(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    change: Mapping[str, Any],
    channel: str,
    by: Caller,
    actor: str = "customer",
    evidence: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> ChangeResult:
    """Record one change of the customer's preferences (see the module docstring).

    Raises UnknownPurpose, UnknownTopic, UnknownFrequency, UnknownContactChannel,
    PausedUntilInPast, NothingToChange, InvalidRequest (``invalid_channel``,
    ``invalid_preference_value``), ChannelNotAllowed, the evidence errors of
    :func:`vault.consent.evidence.clean_evidence`, CustomerNotFound, CustomerErased."""
    now = now or utcnow()
    if channel not in Channel.__members__.values():
        raise InvalidRequest("Unknown channel.", code="invalid_channel")
    if channel == Channel.SELFSERVICE and by.actor != customer_actor(customer_id):
        raise ChannelNotAllowed()
    clean_change = validate(policy, change, now)
    clean = clean_evidence(evidence)
    customers_store.lock_customer(session, customer_id)
    before = store.read_choices(session, customer_id)
    after = rules.apply(before, clean_change)
    event_id = uuid4()
    store.insert_event(
        session,
        {
            "id": event_id,
            "customer_id": customer_id,
            "occurred_at": now,
            "recorded_at": now,
            "channel": channel,
            "actor": actor,
            "recorded_by": by.actor,
            "change": clean_change,
            "evidence": clean,
        },
    )
    store.write_projection(session, customer_id, clean_change, after.paused_until, event_id, now)
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.PREFERENCE_CHANGED,
        customer_id=customer_id,
        details={"channel": channel, "changed": _changed_names(clean_change)},
        now=now,
    )
    events_outbox.emit(
        session=session,
        type=EventType.PREFERENCE_CHANGED,
        customer_id=customer_id,
        data={"preference_event_id": event_id, "occurred_at": now, "change": clean_change},
        now=now,
    )
    consents = consent_reads.read_consents(
        session=session, policy=policy, customer_id=customer_id, now=now
    )
    return ChangeResult(event_id, clean_change, view(policy, customer_id, after, consents))


def history(
    *, session: Session, customer_id: UUID, limit: int = 200
) -> list[store.PreferenceEvent]:
    """The customer's last ``limit`` changes, newest first (reads only)."""
    return list(reversed(store.events(session, customer_id)))[:limit]


# --- the record: DSR export and consent dossier ---------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def record_of(
    *, session: Session, policy: Policy, customer_id: UUID, now: datetime, erased: bool = False
) -> dict[str, Any]:
    """``{"current", "changes", "contacts"}`` of one customer: the view now (None once
    erased: the projection is gone), every change as the ledger holds it, the reported
    contacts (newest first; gone after erasure). Reads only; nothing is decrypted."""
    current_view = None
    if not erased:
        consents = consent_reads.read_consents(
            session=session, policy=policy, customer_id=customer_id, now=now
        )
        current_view = as_json(
            view(policy, customer_id, store.read_choices(session, customer_id), consents)
        )
    changes = [
        {
            "id": str(e.id),
            "occurred_at": _iso(e.occurred_at),
            "recorded_at": _iso(e.recorded_at),
            "channel": e.channel,
            "actor": e.actor,
            "recorded_by": e.recorded_by,
            "change": e.change,
            "evidence": e.evidence,
        }
        for e in store.events(session, customer_id)
    ]
    contacts = [
        {
            "purpose": c.purpose,
            "contact_channel": c.contact_channel,
            "sent_at": _iso(c.sent_at),
            "reported_by": f"client:{c.client_id}",
        }
        for c in store.contacts(session, customer_id)
    ]
    return {"current": current_view, "changes": changes, "contacts": contacts}


# --- the doors' contact parameters ----------------------------------------------------------


def contact_of(
    purpose: Purpose, contact_channel: str | None, topic: str | None, *, required: bool
) -> str | None:
    """The contact channel a read or export is for, checked against the purpose: the named
    one (``unknown_contact_channel`` if the purpose does not use it), else the purpose's only
    one; for a purpose with several, None, or ``contact_channel_required`` when ``required``
    (the audience export: every row is a contact on one channel). ``topic`` must be one of the
    purpose's (``unknown_topic``). A purpose with contact channels is judged by
    :func:`vault.policy.decision.decide_contact` at every door, with this channel (None: the
    channel switch is not asked, the topic, pause and frequency cap are)."""
    if topic is not None and purpose.topic(topic) is None:
        raise UnknownTopic()
    channels = [c.value for c in purpose.contact_channels]
    if contact_channel is not None:
        if contact_channel not in channels:
            raise UnknownContactChannel(
                "The purpose does not contact customers by this contact channel."
            )
        return contact_channel
    if len(channels) == 1:
        return channels[0]
    if len(channels) > 1 and required:
        raise ContactChannelRequired()
    return None


# --- a pause "until <day>" (the forms of /me and the staff counter) ----------------------------

MAX_PAUSE_DAYS = 2 * 366


def pause_until(day: str, now: datetime) -> datetime:
    """The instant a pause "until <day>" ends: the start of that day in Europe/Berlin (the
    customer receives nothing before it). ``day`` is a date input's ``YYYY-MM-DD``, from
    tomorrow on and within two years, else 422 ``invalid_pause_date``."""
    try:
        if len(day) != 10:
            raise ValueError(day)
        chosen = date.fromisoformat(day)
    except ValueError:
        raise InvalidPauseDate() from None
    today = now.astimezone(WINDOW_ZONE).date()
    if not today < chosen <= today + timedelta(days=MAX_PAUSE_DAYS):
        raise InvalidPauseDate()
    return datetime.combine(chosen, time(0), tzinfo=WINDOW_ZONE)
