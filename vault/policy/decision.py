"""The access decision: may purpose P see attributes of customer X now?

One pure function, :func:`decide`, used by every door (the single read, the audience export,
the self-service page's "who may use my data"). It takes plain values, touches no database and no
clock, so it is table-tested over every legal basis x consent status x restriction x objection x
client registration.

Order of checks (first failure wins, so the reason is the most fundamental one):

1. the client must be registered for the purpose (``purpose_not_permitted_for_client``);
2. the customer must exist and not be erased (``customer_erased``, answered as 410 by the API);
3. a restricted customer (Art. 18) releases nothing (``restricted``);
4. every requested attribute must be one the purpose may use (``attribute_not_permitted``);
5. an Art. 21(2) objection to direct marketing blocks every direct-marketing purpose whatever its
   basis; an Art. 21(1) objection blocks the named legitimate-interest purpose (``objected``);
6. consent purposes need an effective grant: see :func:`vault.consent.rules.effective_status`
   (``consent_missing``, ``consent_refused``, ``consent_withdrawn``, ``consent_expired``,
   ``confirmation_pending``, ``reconsent_required``);
7. contract, legal obligation and (unobjected) legitimate interest are allowed while active.

The customer's own filters (vault.preferences) are judged second, by :func:`decide_contact`,
only for a contact (a ``contact_channel`` named or implied): the contact channel switched off
(``contact_channel_opted_out``), the topic switched off (``topic_opted_out``), a pause that has
not ended (``paused``), a contact already reported in the current window of the customer's
frequency (``frequency_cap_reached``). The window is a calendar window in Europe/Berlin
(:func:`window_start`): an ISO week from Monday 00:00, a month from the 1st, a quarter from
1 January, April, July, October; each frequency allows one contact per window.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from vault.policy.models import LegalBasis, Purpose

DIRECT_MARKETING = "direct_marketing"

CONSENT_REASONS = {
    "none": "consent_missing",
    "refused": "consent_refused",
    "withdrawn": "consent_withdrawn",
    "expired": "consent_expired",
    "pending_confirmation": "confirmation_pending",
    "reconsent_required": "reconsent_required",
}

DETAILS = {
    "customer_not_found": "No customer with this id.",
    "purpose_not_permitted_for_client": "This client is not registered for the purpose.",
    "customer_erased": "This customer has been erased.",
    "restricted": "Processing of this customer's data is restricted (GDPR Art. 18).",
    "attribute_not_permitted": "The purpose may not use the requested attributes.",
    "objected": "The customer has objected to this processing (GDPR Art. 21).",
    "consent_missing": "The customer has not given consent for this purpose.",
    "consent_refused": "The customer has refused consent for this purpose.",
    "consent_withdrawn": "The customer has withdrawn consent for this purpose.",
    "consent_expired": "The customer's consent for this purpose has expired.",
    "confirmation_pending": "The customer has not yet confirmed this consent (double opt-in).",
    "reconsent_required": "The purpose has changed; the customer must consent again.",
    "contact_channel_opted_out": "The customer has switched this contact channel off.",
    "topic_opted_out": "The customer has switched this topic off.",
    "paused": "The customer has paused all contact for now.",
    "frequency_cap_reached": "The customer was already contacted for this purpose in the "
    "current window of their chosen frequency.",
}
CONTACT_REASONS = (
    "contact_channel_opted_out",
    "topic_opted_out",
    "paused",
    "frequency_cap_reached",
)
WINDOW_ZONE = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str | None = None
    attributes: tuple[str, ...] = ()  # what may be released (allowed) or was refused (denied)

    @property
    def detail(self) -> str:
        if self.allowed:
            return "Allowed."
        return DETAILS.get(self.reason or "", "Access denied.")


def decide(
    *,
    purpose: Purpose,
    client_purposes: Collection[str],
    customer_status: str,
    objections: Collection[str],
    consent_status: str,
    requested: Sequence[str] | None = None,
) -> Decision:
    """Decide one read. ``consent_status`` is the *effective* status at the moment of the read
    (``granted``, ``none``, ``withdrawn`` …); ``requested`` None means "all the purpose may use"."""
    if purpose.id not in client_purposes:
        return Decision(False, "purpose_not_permitted_for_client")
    if customer_status == "erased":
        return Decision(False, "customer_erased")
    if customer_status != "active":
        return Decision(False, "restricted")
    if requested is None:
        released = tuple(purpose.attributes)
    else:
        refused = tuple(a for a in requested if a not in purpose.attributes)
        if refused:
            return Decision(False, "attribute_not_permitted", refused)
        released = tuple(dict.fromkeys(requested))
    if purpose.direct_marketing and DIRECT_MARKETING in objections:
        return Decision(False, "objected")
    if purpose.legal_basis is LegalBasis.LEGITIMATE_INTEREST and purpose.id in objections:
        return Decision(False, "objected")
    if purpose.legal_basis is LegalBasis.CONSENT and consent_status != "granted":
        return Decision(False, CONSENT_REASONS.get(consent_status, "consent_missing"))
    return Decision(True, None, released)


def window_start(frequency: str, now: datetime) -> datetime:
    """The start (UTC) of the calendar window that ``now`` lies in, in Europe/Berlin:
    ``weekly`` the ISO week (Monday 00:00), ``monthly`` the month, ``quarterly`` the quarter."""
    local = now.astimezone(WINDOW_ZONE)
    day = local.date()
    if frequency == "weekly":
        day = day - timedelta(days=day.weekday())
    elif frequency == "monthly":
        day = day.replace(day=1)
    elif frequency == "quarterly":
        day = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    else:
        raise ValueError(f"unknown frequency {frequency!r}")
    start = datetime(day.year, day.month, day.day, tzinfo=WINDOW_ZONE)
    return start.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """One customer's filters as they bear on one purpose (vault.preferences reads them):
    what is switched off, the chosen frequency (None: the purpose's default), the pause, and
    the latest reported contact for the purpose."""

    channels_off: frozenset[str] = frozenset()
    topics_off: frozenset[str] = frozenset()
    frequency: str | None = None
    paused_until: datetime | None = None
    last_contact: datetime | None = None


NO_FILTERS = ContactFacts()


def decide_contact(
    *,
    purpose: Purpose,
    facts: ContactFacts,
    contact_channel: str | None,
    topic: str | None,
    now: datetime,
) -> Decision:
    """May ``purpose`` contact the customer now by ``contact_channel`` (about ``topic``)?

    Asked after :func:`decide` allowed the use; the channel and topic are the purpose's own
    (the door checked them); ``contact_channel`` None (a read for a purpose with several,
    naming none) skips the channel switch. First failure wins, in the order of
    :data:`CONTACT_REASONS`."""
    if contact_channel is not None and contact_channel in facts.channels_off:
        return Decision(False, "contact_channel_opted_out")
    if topic is not None and topic in facts.topics_off:
        return Decision(False, "topic_opted_out")
    if facts.paused_until is not None and facts.paused_until > now:
        return Decision(False, "paused")
    frequency = facts.frequency or purpose.default_frequency
    if (
        frequency is not None
        and facts.last_contact is not None
        and facts.last_contact >= window_start(frequency, now)
    ):
        return Decision(False, "frequency_cap_reached")
    return Decision(True)
