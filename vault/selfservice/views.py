"""What the self-service pages show: the view models of consents, data and "who used my data".

Reading the decrypted values (:func:`my_data`) is audited with the customer as actor. Services
never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
from sqlmodel import Session

from vault.audit import query as audit_query
from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.auth import service as auth_service
from vault.consent import store as consent_store
from vault.consent.schemas import EffectiveStatus
from vault.crypto.envelope import Envelope
from vault.customers import service as customers_service
from vault.db import utcnow
from vault.policy import Policy, Purpose
from vault.policy.decision import DIRECT_MARKETING
from vault.policy.models import LegalBasis
from vault.preferences import service as preferences_service
from vault.provenance import Caller
from vault.selfservice import i18n
from vault.selfservice import summary as summary_mod

# Only these actions appear on "who used my data": releases of data to apps, contacts an app
# reported, and what staff at a store or on the phone did with it (read it, found the customer).
USE_ACTIONS = (AuditAction.DATA_READ, AuditAction.DATA_EXPORT, AuditAction.CONTACT_RECORDED)
STAFF_USE_ACTIONS = (AuditAction.DATA_READ, AuditAction.CUSTOMER_LOOKUP)
ACTIVITY_LIMIT = 200


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated when shown."""
    return message


# staff roles as the customer reads them; the store's name comes from policies/staff.toml
STAFF_ROLE = {
    "store": N_("customer service"),
    "call_center": N_("customer service by phone"),
}
STAFF_IN_STORE = N_("store %(store)s")
STAFF_OTHER = N_("our staff")
STAFF_LOOKUP = N_("found your customer account")


@dataclass(frozen=True)
class AttributeUse:
    name: str
    label: str
    reduction: str | None  # "year", "prefix2", "domain"


@dataclass(frozen=True)
class PurposeView:
    id: str
    title: str
    description: str
    legal_basis: str
    explicit_consent: bool
    attributes: list[AttributeUse]
    recipients: list[tuple[str, str]]  # (name, kind)
    status: str | None  # effective consent status; None for purposes not based on consent
    changes: str | None  # shown when the customer must consent again
    direct_marketing: bool
    objectable: bool  # Art. 21(1): legitimate interest
    objected: bool
    # Art. 21(2): the customer objected to direct marketing and this purpose is such
    stopped_by_objection: bool = False

    @property
    def switched_on(self) -> bool:
        return self.status in (EffectiveStatus.GRANTED, EffectiveStatus.PENDING_CONFIRMATION)

    @property
    def pending(self) -> bool:
        """Double opt-in asked for but not confirmed: neither on nor off."""
        return self.status == EffectiveStatus.PENDING_CONFIRMATION


def _purpose_view(
    policy: Policy,
    purpose: Purpose,
    lang: str,
    status: str | None,
    objections: frozenset[str],
) -> PurposeView:
    attrs = []
    for name in purpose.attributes:
        attr = policy.attributes.get(name)
        label = attr.label.get(lang) if attr is not None else name
        reduction = purpose.reduce.get(name)
        attrs.append(AttributeUse(name, label, reduction.value if reduction else None))
    recipients = [
        (policy.recipients[r].name.get(lang), policy.recipients[r].kind)
        for r in purpose.recipients
        if r in policy.recipients
    ]
    changes = purpose.changes.get(lang) if status == EffectiveStatus.RECONSENT_REQUIRED else None
    objectable = purpose.legal_basis is LegalBasis.LEGITIMATE_INTEREST
    return PurposeView(
        id=purpose.id,
        title=purpose.title.get(lang),
        description=purpose.description.get(lang),
        legal_basis=purpose.legal_basis.value,
        explicit_consent=purpose.explicit_consent,
        attributes=attrs,
        recipients=recipients,
        status=status,
        changes=changes or None,
        direct_marketing=purpose.direct_marketing,
        objectable=objectable,
        objected=objectable and purpose.id in objections,
    )


@dataclass(frozen=True)
class ConsentsView:
    consent: list[PurposeView]
    other: list[PurposeView]
    direct_marketing: list[PurposeView]
    objected_direct_marketing: bool
    status: str  # active | restricted

    @property
    def granted(self) -> list[PurposeView]:
        return [p for p in self.consent if p.status == EffectiveStatus.GRANTED]

    @property
    def pending(self) -> list[PurposeView]:
        return [p for p in self.consent if p.pending]


def consents_view(
    *, session: Session, policy: Policy, customer_id: UUID, lang: str, now: datetime | None = None
) -> ConsentsView:
    now = now or utcnow()
    customer = customers_service.get_customer(session, customer_id)
    objections = customer.objection_set
    states = consent_store.effective_states(
        session=session, policy=policy, customer_id=customer_id, now=now
    )
    objected_dm = DIRECT_MARKETING in objections
    consent, other = [], []
    for purpose in policy.purposes.values():
        status = states[purpose.id].status if purpose.needs_consent else None
        view = _purpose_view(policy, purpose, lang, status, objections)
        if objected_dm and purpose.direct_marketing:
            view = replace(view, stopped_by_objection=True)
        (consent if purpose.needs_consent else other).append(view)
    return ConsentsView(
        consent=consent,
        other=other,
        direct_marketing=[p for p in consent + other if p.direct_marketing],
        objected_direct_marketing=objected_dm,
        status=customer.status,
    )


def first_name(*, session: Session, envelope: Envelope, customer_id: UUID) -> str | None:
    customer = customers_service.get_customer(session, customer_id)
    values = customers_service.decrypt_values(
        session=session, envelope=envelope, customer=customer, names=["first_name"]
    )
    value = values.get("first_name")
    return str(value) if value is not None else None


@dataclass(frozen=True)
class DataItem:
    name: str
    label: str
    value: Any
    text: str  # the value as the customer reads it (labels, country names, local dates)


def my_data(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer_id: UUID,
    lang: str,
    by: Caller,
) -> list[DataItem]:
    """The customer's decrypted values with their labels, in the policy's order. The view is
    audited (the customer as actor), so the log shows every decryption."""
    customer = customers_service.get_customer(session, customer_id)
    values = customers_service.decrypt_values(session=session, envelope=envelope, customer=customer)
    order = {name: i for i, name in enumerate(policy.attributes)}
    items = []
    for name, value in values.items():
        attr = policy.attributes.get(name)
        label = attr.label.get(lang) if attr is not None else name
        items.append(DataItem(name, label, value, i18n.attribute_value(attr, value, lang)))
    items.sort(key=lambda item: order.get(item.name, len(order)))
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.SELFSERVICE_DATA_VIEWED,
        customer_id=customer_id,
        attributes=sorted(values),
    )
    return items


@dataclass(frozen=True)
class Use:
    at: datetime
    app: str  # who: the app's name, or staff in plain words ("customer service, store …")
    purpose: str
    attributes: list[str]


def staff_words(policy: Policy, details: dict[str, Any], lang: str) -> str:
    """Staff use in plain words: "customer service, store Köln-Ehrenfeld" (role and store as
    recorded in the audit event's details at the time)."""
    gettext = i18n.translations(lang).gettext
    role = details.get("role")
    who = gettext(STAFF_ROLE[role]) if role in STAFF_ROLE else gettext(STAFF_OTHER)
    store_id = details.get("store")
    if isinstance(store_id, str) and store_id:
        store = policy.stores.get(store_id)
        name = store.name.get(lang) if store is not None else store_id
        who = f"{who}, {gettext(STAFF_IN_STORE) % {'store': name}}"
    return who


def _details(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def activity(
    *, session: Session, policy: Policy, customer_id: UUID, lang: str, limit: int = ACTIVITY_LIMIT
) -> list[Use]:
    """ "Who used my data": the latest releases of the customer's data to apps and to staff
    (store, call centre), from the audit log, in plain words (app name or staff role and store,
    purpose title, attribute labels, time). Newest first."""
    gettext = i18n.translations(lang).gettext
    rows = audit_query.latest_releases(
        session, customer_id, USE_ACTIONS, limit, staff_actions=STAFF_USE_ACTIONS
    )
    names = auth_service.client_names(
        session, {r.actor_id for r in rows if r.actor_id and r.actor_type == "client"}
    )
    out = []
    for r in rows:
        purpose = policy.purposes.get(r.purpose or "")
        if r.actor_type == "staff":
            who = staff_words(policy, _details(r.details), lang)
        else:
            who = names.get(r.actor_id or "", r.actor_id or "?")
        if r.action == AuditAction.CUSTOMER_LOOKUP:
            what = gettext(STAFF_LOOKUP)
        else:
            what = purpose.title.get(lang) if purpose else (r.purpose or "")
        out.append(
            Use(
                at=r.occurred_at,
                app=who,
                purpose=what,
                attributes=[
                    policy.attributes[a].label.get(lang) if a in policy.attributes else a
                    for a in (r.attributes.split(",") if r.attributes else [])
                ],
            )
        )
    return out


# --- what the customer receives: contact channels, topics, frequency, pause -------------------


def N_(message: str) -> str:
    """Marks a message for extraction; translated where it is used."""
    return message


CHANNEL_LABELS = {
    "email": N_("E-mail"),
    "sms": N_("Text message (SMS)"),
    "push": N_("Push notification in our app"),
    "post": N_("Letter by post"),
    "phone": N_("Phone call"),
}
FREQUENCY_LABELS = {
    "weekly": N_("At most once a week"),
    "monthly": N_("At most once a month"),
    "quarterly": N_("At most once a quarter"),
}


@dataclass(frozen=True)
class Choice:
    """One checkbox or radio button of a preference form."""

    id: str
    label: str
    description: str
    on: bool


@dataclass(frozen=True)
class PurposePreferences:
    """The preference forms under one consent. ``applicable`` is False while the purpose may
    not contact the customer at all (no effective consent, or an objection stops it): then the
    page offers no switches, only the explanation."""

    id: str
    title: str
    applicable: bool
    channels: list[Choice]
    topics: list[Choice]
    frequencies: list[Choice]
    summary: str


@dataclass(frozen=True)
class PreferencesView:
    purposes: dict[str, PurposePreferences]
    paused_until: datetime | None  # None: no pause (or one that has ended)
    paused_day: str | None  # the pause's end in words ("3. Dezember 2026")
    pause_min: str  # the date input's bounds and suggestion, YYYY-MM-DD in Europe/Berlin
    pause_max: str


def _gettext(lang: str) -> Any:
    return i18n.translations(lang).gettext


def local_today(now: datetime) -> date:
    """The calendar day of ``now`` where the customers live (Europe/Berlin)."""
    return now.astimezone(ZoneInfo(i18n.TIMEZONE)).date()


def preferences_view(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    consents: ConsentsView,
    lang: str,
    now: datetime | None = None,
) -> PreferencesView:
    """The preference forms of every purpose with choices, the plain-words sentence of each,
    and the pause (from :func:`vault.preferences.service.current`)."""
    now = now or utcnow()
    _ = _gettext(lang)
    prefs = preferences_service.current(
        session=session, policy=policy, customer_id=customer_id, now=now
    )
    shown = {p.id: p for p in consents.consent + consents.other}
    out: dict[str, PurposePreferences] = {}
    for purpose in preferences_service.purposes_with_choices(policy):
        pv = shown.get(purpose.id)
        applicable = pv is not None and not pv.stopped_by_objection and not pv.objected
        if pv is not None and purpose.needs_consent:
            applicable = applicable and pv.status == EffectiveStatus.GRANTED
        channels = [
            Choice(
                c.value,
                _(CHANNEL_LABELS[c.value]) if c.value in CHANNEL_LABELS else c.value,
                "",
                prefs.contact_channels.get(c.value, True),
            )
            for c in purpose.contact_channels
        ]
        chosen_topics = prefs.topics.get(purpose.id, {})
        topics = [
            Choice(t.id, t.label.get(lang), t.description.get(lang), chosen_topics.get(t.id, True))
            for t in purpose.topics
        ]
        chosen_freq = prefs.frequency.get(purpose.id)
        frequencies = [
            Choice(f, _(FREQUENCY_LABELS[f]) if f in FREQUENCY_LABELS else f, "", f == chosen_freq)
            for f in purpose.frequencies
        ]
        text = summary_mod.summary(prefs, purpose, lang, now) if applicable else _("nothing")
        out[purpose.id] = PurposePreferences(
            id=purpose.id,
            title=purpose.title.get(lang),
            applicable=applicable,
            channels=channels,
            topics=topics,
            frequencies=frequencies,
            summary=text,
        )
    paused = prefs.paused_until if prefs.paused_until and prefs.paused_until > now else None
    today = local_today(now)
    return PreferencesView(
        purposes=out,
        paused_until=paused,
        paused_day=i18n.format_day(paused, lang) if paused else None,
        pause_min=(today + timedelta(days=1)).isoformat(),
        pause_max=(today + timedelta(days=preferences_service.MAX_PAUSE_DAYS)).isoformat(),
    )
