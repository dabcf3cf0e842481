"""The counter: what store and call-centre staff do for a customer in front of them or on the
phone (roles ``store`` and ``call_center``).

- **Find** (:func:`find_customer`): by e-mail, phone or loyalty number, through the blind index
  only (:func:`vault.customers.service.find`): one keyed hash, one primary-key read. A search
  never lists customers: it answers exactly one customer or "not found" (an erased one is not
  found). Every search is audited (``customer.lookup``, the attribute searched, never the
  value), found or not.
- **See** (:func:`customer_card`): the consent state per purpose with its history in plain
  words (the words of the consent dossier), and the attribute values the role may see: the
  role maps to purposes in ``policies/staff.toml`` (``[[staff_role]]``), and the values are read
  through :func:`vault.access.service.read` for each of those purposes, exactly as an app
  registered for them would read: the access decision, the reductions, one ``data.read``
  audit event per purpose with actor ``staff:<id>``. A value no purpose of the role may use is
  never decrypted. Showing the card is audited as ``staff.customer_viewed``.
- **Record** (:func:`record_statement`): a grant, withdrawal or refusal the customer states,
  through :func:`vault.consent.service.record_event` (so receipts, the double opt-in mail and
  webhooks behave as for any door) with channel ``store`` / ``call_center`` and evidence
  ``staff_id``, ``store_id``, ``script_version`` (``<id>.v<version>`` of the script read out,
  required for a grant, which must be the policy's current version) and ``language``.
- **Preferences** (:func:`customer_card`, :func:`record_preferences`): per purpose with
  contact channels (:func:`vault.preferences.service.purposes_with_choices`) the current view
  and the changes of the preference ledger that touch it; staff record the channels, topics and
  frequency the customer states, or a pause, through :func:`vault.preferences.service.change`
  with channel ``store`` / ``call_center``, ``by`` the member's caller and evidence
  ``staff_id``, ``store_id``, ``language``. A preference change needs no script: it only ever
  narrows (or restores) what a consent already allows, so nothing is read out. As on /me, only a
  purpose that may contact the customer (an effective grant, no objection) has a form (else 409
  ``preferences_not_applicable``).
- **Link** (:func:`send_link`): mails the customer a self-service link (session origin
  ``staff:<id>``); the staff member gets the mail's id, never the link.
- **Request** (:func:`start_request`): records a data-subject request as received.

Every one of these is an audit event with actor ``staff:<id>``; the events this module writes
itself carry ``details`` ``{"role", "store"}`` so the customer's "who used my data" can say
"customer service, store Köln-Ehrenfeld" as it was at the time. Services never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel import Session

from vault.access import service as access_service
from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.auth.service import Principal
from vault.config import Settings
from vault.consent import reads as consent_reads
from vault.consent import service as consent_service
from vault.crypto.envelope import Envelope
from vault.crypto.signing import Signer
from vault.customers import service as customers_service
from vault.db import utcnow
from vault.dsr import requests as dsr_requests
from vault.dsr.schemas import RequestKind
from vault.errors import Conflict, CustomerErased, CustomerNotFound, InvalidRequest, VaultError
from vault.policy import Policy
from vault.policy.decision import DIRECT_MARKETING
from vault.policy.errors import UnknownPurpose
from vault.policy.models import COUNTER_ROLES, Script
from vault.policy.values import normalise
from vault.preferences import service as preferences_service
from vault.preferences.errors import UnknownContactChannel, UnknownFrequency, UnknownTopic
from vault.provenance import Caller
from vault.selfservice import links
from vault.selfservice.errors import PreferencesNotApplicable

# what a counter may search by: exactly the searchable attributes staff ask a customer for
SEARCH_BY = ("email", "phone", "loyalty_number")
STATEMENTS = tuple(sorted(consent_service.WRITABLE_STATUSES))  # granted, refused, withdrawn
GRANTED = "granted"
METHOD = {"store": "in_person", "call_center": "phone"}
HISTORY_LIMIT = 200
STAFF = "staff"


# --- errors ---------------------------------------------------------------------------------


class NotACounterRole(VaultError):
    code = "staff_role_not_counter"
    status = 403
    default_detail = "Only store and call-centre staff record statements for customers."


class StoreNotInPolicy(Conflict):
    code = "staff_store_unknown"
    default_detail = (
        "This account's store is not one of the stores in policies/staff.toml; ask an "
        "administrator to set it (vault staff)."
    )


class InvalidSearch(InvalidRequest):
    code = "invalid_search"
    default_detail = "Search by e-mail address, phone number or loyalty card number."


class ScriptRequired(InvalidRequest):
    code = "script_required"
    default_detail = "A grant needs the notice or phone script that was read out."


class ScriptNotApplicable(InvalidRequest):
    code = "script_not_applicable"
    default_detail = "This script does not cover this purpose at this touchpoint."


class ScriptOutdated(Conflict):
    code = "script_version_outdated"
    default_detail = "The script has a new version; read the current text to the customer."


class InvalidStatement(InvalidRequest):
    code = "invalid_statement"
    default_detail = "A statement is a grant, a withdrawal or a refusal."


# --- who is at the counter -------------------------------------------------------------------


@dataclass(frozen=True)
class Counter:
    """A signed-in member of store or call-centre staff: the id the audit log names, the role
    (which is also the touchpoint of what they record) and, for store staff, the store id."""

    staff_id: str
    role: str
    store_id: str | None = None
    request_id: str | None = None

    @property
    def actor(self) -> str:
        return f"{STAFF}:{self.staff_id}"

    @property
    def caller(self) -> Caller:
        return Caller(self.actor, self.request_id)

    @property
    def details(self) -> dict[str, str]:
        out = {"role": self.role}
        if self.store_id:
            out["store"] = self.store_id
        return out


def resolve_store(policy: Policy, store: str | None) -> str | None:
    """The policy's store id for an account's ``--store`` (its id, or its name in either
    language, case-insensitive), else None."""
    if not store:
        return None
    wanted = store.strip().casefold()
    for s in policy.stores.values():
        if wanted in (s.id, s.name.de.casefold(), s.name.en.casefold()):
            return s.id
    return None


def counter_for(
    policy: Policy,
    *,
    staff_id: str,
    role: str,
    store: str | None,
    request_id: str | None = None,
) -> Counter:
    """The :class:`Counter` of an account. Store staff need a store of the policy (409
    ``staff_store_unknown``): their statements must say where they were made."""
    if role not in COUNTER_ROLES:
        raise NotACounterRole()
    store_id = resolve_store(policy, store)
    if role == "store" and store_id is None:
        raise StoreNotInPolicy()
    return Counter(staff_id=staff_id, role=role, store_id=store_id, request_id=request_id)


class StaffPrincipal(Principal):
    """The access decision's caller for a counter read: registered for the role's purposes,
    audited as ``staff:<id>``."""

    @property
    def actor(self) -> str:
        return f"{STAFF}:{self.client_id}"


def role_purposes(policy: Policy, role: str) -> list[str]:
    entry = policy.staff_roles.get(role)
    return list(entry.purposes) if entry is not None else []


# --- find -----------------------------------------------------------------------------------


def find_customer(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    counter: Counter,
    by: str,
    value: str,
    now: datetime | None = None,
) -> UUID:
    """The one customer whose ``by`` (e-mail, phone, loyalty number) is ``value``, through the
    blind index; CustomerNotFound otherwise (also for an erased customer, and for a value that
    is not a valid e-mail / phone / card number: the page says "not found" either way)."""
    now = now or utcnow()
    if by not in SEARCH_BY or by not in policy.attributes or not policy.attributes[by].searchable:
        raise InvalidSearch()
    if not isinstance(value, str) or not value.strip() or len(value) > 320:
        raise InvalidSearch("Type what the customer tells you.", code="invalid_search_value")
    customer_id: UUID | None
    try:
        normalised = normalise(policy.attributes[by], value.strip())
    except VaultError:
        customer_id = None
    else:
        customer_id = customers_service.find(
            session=session, envelope=envelope, attribute=by, value=normalised
        )
    if customer_id is not None:
        try:
            customers_service.get_customer(session, customer_id)
        except (CustomerNotFound, CustomerErased):
            customer_id = None
    audit_record.record(
        session=session,
        by=counter.caller,
        action=AuditAction.CUSTOMER_LOOKUP,
        outcome="success" if customer_id is not None else "denied",
        customer_id=customer_id,
        attributes=[by],
        reason=None if customer_id is not None else "not_found",
        details=counter.details,
        now=now,
    )
    if customer_id is None:
        raise CustomerNotFound("No customer matches.")
    return customer_id


# --- see ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    occurred_at: datetime
    status: str
    channel: str
    recorded_by: str
    script_version: str | None
    store_id: str | None
    receipt: str


@dataclass(frozen=True)
class PurposeCard:
    id: str
    status: str  # effective: granted, none, withdrawn, pending_confirmation, …
    since: datetime | None
    expires_at: datetime | None
    double_opt_in: bool
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass(frozen=True)
class ShownValue:
    attribute: str
    value: Any
    purposes: list[str]


@dataclass(frozen=True)
class PreferenceChange:
    """One entry of the preference ledger as the card shows it: when, where, who, what."""

    occurred_at: datetime
    channel: str
    recorded_by: str
    store_id: str | None
    change: dict[str, Any]


@dataclass(frozen=True)
class PurposePreferences:
    id: str
    applicable: bool  # the purpose may contact the customer: staff may record choices
    channels: list[tuple[str, bool]]
    topics: list[tuple[str, bool]]
    frequencies: list[tuple[str, bool]]
    history: list[PreferenceChange] = field(default_factory=list)


@dataclass(frozen=True)
class CustomerCard:
    customer_id: UUID
    status: str  # active | restricted
    consents: list[PurposeCard]
    values: list[ShownValue]
    # purposes of the role whose read the decision refused, with its reason (e.g. restricted)
    withheld: dict[str, str]
    # per purpose with contact channels: the customer's choices and their history
    preferences: list[PurposePreferences] = field(default_factory=list)
    preference_view: Any = None  # vault.preferences.service.PreferenceView


def customer_card(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    counter: Counter,
    customer_id: UUID,
    now: datetime | None = None,
) -> CustomerCard:
    """What the counter shows about one customer (found by :func:`find_customer`)."""
    now = now or utcnow()
    customer = customers_service.get_customer(session, customer_id)
    states = consent_reads.read_consents(
        session=session, policy=policy, customer_id=customer_id, now=now
    )
    events = consent_reads.history(session=session, customer_id=customer_id, limit=HISTORY_LIMIT)
    by_purpose: dict[str, list[HistoryEntry]] = {}
    for e in reversed(events):  # newest first
        evidence = e.evidence or {}
        by_purpose.setdefault(e.purpose, []).append(
            HistoryEntry(
                occurred_at=e.occurred_at,
                status=e.status,
                channel=e.channel,
                recorded_by=e.recorded_by,
                script_version=evidence.get("script_version"),
                store_id=evidence.get("store_id"),
                receipt=e.receipt,
            )
        )
    consents = []
    for pid, state in states.items():
        purpose = policy.purposes[pid]
        history = by_purpose.get(pid, [])
        consents.append(
            PurposeCard(
                id=pid,
                status=state.status,
                since=state.updated_at,
                expires_at=state.expires_at,
                double_opt_in=purpose.double_opt_in,
                history=history,
            )
        )
    prefs_view = preferences_service.current(
        session=session, policy=policy, customer_id=customer_id, now=now
    )
    changes = [
        PreferenceChange(
            occurred_at=e.occurred_at,
            channel=e.channel,
            recorded_by=e.recorded_by,
            store_id=(e.evidence or {}).get("store_id"),
            change=e.change or {},
        )
        for e in preferences_service.history(
            session=session, customer_id=customer_id, limit=HISTORY_LIMIT
        )
    ]
    objections = customer.objection_set
    granted = {pid for pid, st in states.items() if st.status == GRANTED}
    preferences = [
        PurposePreferences(
            id=p.id,
            applicable=_may_contact(p, granted, objections),
            channels=[
                (c.value, prefs_view.contact_channels.get(c.value, True))
                for c in p.contact_channels
            ],
            topics=[(t.id, prefs_view.topics.get(p.id, {}).get(t.id, False)) for t in p.topics],
            frequencies=[(f, prefs_view.frequency.get(p.id) == f) for f in p.frequencies],
            history=[c for c in changes if _touches(c.change, p)],
        )
        for p in preferences_service.purposes_with_choices(policy)
    ]
    principal = StaffPrincipal(
        client_id=counter.staff_id,
        scopes=frozenset(),
        purposes=frozenset(role_purposes(policy, counter.role)),
        request_id=counter.request_id,
    )
    shown: dict[str, ShownValue] = {}
    withheld: dict[str, str] = {}
    for pid in role_purposes(policy, counter.role):
        result = access_service.read(
            session=session,
            envelope=envelope,
            policy=policy,
            principal=principal,
            customer_id=customer_id,
            purpose=policy.purposes[pid],
            requested=None,
            now=now,
            details=counter.details,
        )
        if not result.decision.allowed:
            withheld[pid] = result.decision.reason or "denied"
            continue
        for name, value in result.attributes.items():
            if name in shown:
                shown[name].purposes.append(pid)
            else:
                shown[name] = ShownValue(name, value, [pid])
    order = list(policy.attributes)
    audit_record.record(
        session=session,
        by=counter.caller,
        action=AuditAction.STAFF_CUSTOMER_VIEWED,
        customer_id=customer_id,
        details=counter.details,
        now=now,
    )
    return CustomerCard(
        customer_id=customer_id,
        status=customer.status,
        consents=consents,
        values=sorted(shown.values(), key=lambda v: order.index(v.attribute)),
        withheld=withheld,
        preferences=preferences,
        preference_view=prefs_view,
    )


def _may_contact(purpose: Any, granted: set[str], objections: Any) -> bool:
    """As on /me: an effective grant (for a consent purpose) and no objection that stops it."""
    if purpose.id in objections or (purpose.direct_marketing and DIRECT_MARKETING in objections):
        return False
    return not purpose.needs_consent or purpose.id in granted


def _touches(change: Mapping[str, Any], purpose: Any) -> bool:
    """Whether a ledger change concerns ``purpose``: one of its contact channels, its topics
    or frequency, or the pause (which stops every purpose)."""
    channels = {c.value for c in purpose.contact_channels}
    return (
        bool(channels & set(change.get("contact_channels", {})))
        or purpose.id in change.get("topics", {})
        or purpose.id in change.get("frequency", {})
        or "paused_until" in change
    )


# --- record ---------------------------------------------------------------------------------


def scripts_for(policy: Policy, counter: Counter, purpose: str | None = None) -> list[Script]:
    """The scripts the counter's touchpoint may read out (for ``purpose``, if given)."""
    return [
        s
        for s in policy.scripts.values()
        if counter.role in s.touchpoints and (purpose is None or purpose in s.purposes)
    ]


def check_script(
    policy: Policy, counter: Counter, purpose: str, script_id: str | None, version: int | None
) -> Script | None:
    if not script_id:
        return None
    script = policy.scripts.get(script_id)
    if script is None or counter.role not in script.touchpoints or purpose not in script.purposes:
        raise ScriptNotApplicable()
    if version != script.version:
        raise ScriptOutdated()
    return script


def record_statement(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    envelope: Envelope,
    counter: Counter,
    customer_id: UUID,
    purpose: str,
    status: str,
    script_id: str | None,
    script_version: int | None,
    language: str = "de",
    now: datetime | None = None,
) -> consent_service.RecordResult:
    """Record what the customer said. A grant needs the script read out (its current version);
    a withdrawal or refusal may name one. A grant of a double opt-in purpose is recorded
    pending and the confirmation mail goes to the customer's stored address."""
    if status not in STATEMENTS:
        raise InvalidStatement()
    consent_service.consent_purpose(policy, purpose)
    script = check_script(policy, counter, purpose, script_id, script_version)
    if status == GRANTED and script is None:
        raise ScriptRequired()
    evidence: Mapping[str, Any] = {
        "staff_id": counter.staff_id,
        "store_id": counter.store_id,
        "script_version": script.ref if script is not None else None,
        "language": language,
    }
    return consent_service.record_event(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        customer_id=customer_id,
        purpose=purpose,
        status=status,
        channel=counter.role,
        by=counter.caller,
        method=METHOD[counter.role],
        actor="customer",
        language=language,
        evidence=evidence,
        envelope=envelope,
        now=now,
    )


def _preference_purpose(policy: Policy, purpose_id: str) -> Any:
    for p in preferences_service.purposes_with_choices(policy):
        if p.id == purpose_id:
            return p
    raise UnknownPurpose()


def _record_preferences(session, policy, counter, customer_id, change, language, now):
    return preferences_service.change(
        session=session,
        policy=policy,
        customer_id=customer_id,
        change=change,
        channel=counter.role,
        by=counter.caller,
        actor="customer",
        evidence={
            "staff_id": counter.staff_id,
            "store_id": counter.store_id,
            "language": language,
        },
        now=now,
    )


def record_preferences(
    *,
    session: Session,
    policy: Policy,
    counter: Counter,
    customer_id: UUID,
    purpose: str,
    contact_channels: list[str],
    topics: list[str],
    frequency: str | None,
    language: str = "de",
    now: datetime | None = None,
) -> preferences_service.ChangeResult:
    """Record the choices the customer states for one purpose, in one ledger event: the
    purpose's contact channels ticked on and its others off, likewise its topics, and the
    frequency chosen. Every value must be the purpose's (else the preference service's 422 and
    nothing is written); a purpose that may not contact the customer is 409
    ``preferences_not_applicable``."""
    now = now or utcnow()
    chosen = _preference_purpose(policy, purpose)
    customer = customers_service.get_customer(session, customer_id)
    states = consent_reads.read_consents(
        session=session, policy=policy, customer_id=customer_id, now=now
    )
    granted = {pid for pid, st in states.items() if st.status == GRANTED}
    if not _may_contact(chosen, granted, customer.objection_set):
        raise PreferencesNotApplicable()
    if len(contact_channels) + len(topics) > 64:
        raise InvalidRequest("Too many choices.", code="invalid_preference_value")
    names = [c.value for c in chosen.contact_channels]
    if set(contact_channels) - set(names):
        raise UnknownContactChannel()
    change: dict[str, Any] = {"contact_channels": {c: c in contact_channels for c in names}}
    if chosen.topics:
        ids = [t.id for t in chosen.topics]
        if set(topics) - set(ids):
            raise UnknownTopic()
        change["topics"] = {chosen.id: {t: t in topics for t in ids}}
    elif topics:
        raise UnknownTopic()
    if chosen.frequencies:
        change["frequency"] = {chosen.id: frequency or ""}
    elif frequency:
        raise UnknownFrequency()
    return _record_preferences(session, policy, counter, customer_id, change, language, now)


def record_pause(
    *,
    session: Session,
    policy: Policy,
    counter: Counter,
    customer_id: UUID,
    until: str | None,
    language: str = "de",
    now: datetime | None = None,
) -> preferences_service.ChangeResult:
    """Pause every contact until the day ``until`` (``YYYY-MM-DD``, from tomorrow, within two
    years: else 422 ``invalid_pause_date``; the start of that day in Europe/Berlin, as on /me),
    or end the pause (``until`` None). A pause only ever narrows contact, so it needs no
    granted consent."""
    now = now or utcnow()
    customers_service.get_customer(session, customer_id)
    end = preferences_service.pause_until(until, now) if until is not None else None
    return _record_preferences(
        session, policy, counter, customer_id, {"paused_until": end}, language, now
    )


# --- link, request --------------------------------------------------------------------------


def send_link(
    *,
    session: Session,
    envelope: Envelope,
    settings: Settings,
    counter: Counter,
    customer_id: UUID,
    language: str | None = None,
    now: datetime | None = None,
) -> links.Mailed:
    """Mail the customer a self-service link (409 without an address); the answer holds the
    mail's id, never the link."""
    return links.mail_link(
        session=session,
        envelope=envelope,
        settings=settings,
        customer_id=customer_id,
        by=counter.caller,
        origin=counter.actor,
        language=language,
        now=now,
    )


def start_request(
    *,
    session: Session,
    counter: Counter,
    customer_id: UUID,
    kind: str,
    now: datetime | None = None,
) -> Any:
    """Record a data-subject request the customer makes at the counter (due in one month;
    the privacy office takes it from there)."""
    if kind not in RequestKind.__members__.values():
        raise InvalidRequest("Unknown kind of request.", code="invalid_request_kind")
    customers_service.get_customer(session, customer_id)
    return dsr_requests.create_request(
        session=session, customer_id=customer_id, kind=kind, by=counter.caller, now=now
    )
