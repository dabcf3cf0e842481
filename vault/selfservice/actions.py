"""What the self-service pages do: consent changes, the GPC signal, objection, export, erasure.

Every change is a consent event (channel ``selfservice``, actor ``customer``, recorded by
``customer:<id>``, evidence: user agent, truncated IP, language, GPC) or a DSR action; the
consent and DSR services audit each with the customer as actor. The customer always comes
from the session. Services never commit.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlmodel import Session

from vault.config import Settings
from vault.consent import errors as consent_errors
from vault.consent import evidence as consent_evidence
from vault.consent import rules as consent_rules
from vault.consent import service as consent_service
from vault.consent import store as consent_store
from vault.consent.schemas import Channel, EffectiveStatus
from vault.crypto.envelope import Envelope
from vault.crypto.signing import Signer
from vault.customers import service as customers_service
from vault.db import utcnow
from vault.dsr import erasure as dsr_erasure
from vault.dsr import export as dsr_export
from vault.dsr import rights as dsr_rights
from vault.errors import InvalidRequest, VaultError
from vault.policy import Policy, Purpose
from vault.policy.decision import DIRECT_MARKETING
from vault.policy.errors import UnknownPurpose
from vault.preferences import service as preferences_service
from vault.preferences.errors import UnknownContactChannel, UnknownTopic
from vault.provenance import Caller
from vault.selfservice.errors import ErasureNotConfirmed, PreferencesNotApplicable
from vault.selfservice.models import SelfserviceSession

MAX_USER_AGENT = 256


# --- evidence -----------------------------------------------------------------------------


def page_evidence(
    *,
    user_agent: str | None,
    client_ip: str | None,
    language: str,
    gpc: bool,
    session_origin: str = "",
) -> dict[str, Any]:
    """Evidence of a statement made on the page: user agent (truncated), the client's IP
    truncated by the consent service's rule (/24, /48), the page language, the GPC signal, and
    who started the session (``session_origin``: ``customer``, ``client:<id>``, ``staff:<id>``,
    ``cli``; absent for sessions from before it was recorded)."""
    evidence: dict[str, Any] = {"language": language, "gpc": gpc}
    if session_origin:
        evidence["session_origin"] = session_origin
    if user_agent:
        ua = " ".join(user_agent.split())[:MAX_USER_AGENT]
        try:
            consent_evidence.clean_evidence({"user_agent": ua})
            evidence["user_agent"] = ua
        except VaultError:
            evidence["user_agent"] = "(withheld)"
    if client_ip:
        # The consent service truncates ``ip`` on write; here only check that it is one (a
        # test client or a unix socket gives none, and then there is nothing to keep).
        with contextlib.suppress(VaultError):
            consent_evidence.truncate_ip(client_ip)
            evidence["ip"] = client_ip
    return evidence


# --- consents -----------------------------------------------------------------------------


def change_consent(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    customer_id: UUID,
    purpose: str,
    status: str,
    language: str,
    evidence: dict[str, Any],
    by: Caller,
    envelope: Envelope,
    now: datetime | None = None,
) -> consent_service.RecordResult:
    """The customer switched a consent on (``granted``) or off (``withdrawn``) on the page; a
    double opt-in grant mails its confirmation link (``envelope``: to read the address)."""
    if status not in ("granted", "withdrawn"):
        raise consent_errors.InvalidConsentStatus("Choose to give or to withdraw consent.")
    result = consent_service.record_event(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        customer_id=customer_id,
        purpose=purpose,
        status=status,
        channel=Channel.SELFSERVICE.value,
        method="selfservice_switch",
        actor="customer",
        by=by,
        language=language,
        evidence=evidence,
        envelope=envelope,
        now=now,
    )
    return result  # record_event audits it (consent.recorded, actor customer:<id>)


# Sessions opened from a link somebody else held (a staff member's console, an operator's CLI)
# are not the customer's own: a grant made there does not outweigh their browser's signal.
NOT_OWN_ORIGINS = ("staff:",)
OPERATOR_ORIGIN = "cli"  # exactly: "client:<id>" also starts with "cli"


def _customers_own(session: Session, customer_id: UUID, event_id: UUID) -> bool:
    """Whether a decision was the customer's own choice on this page: recorded through
    ``/me`` (channel ``selfservice``, recorded by the customer themself; the API and the
    import cannot write that channel) in a session whose origin is not someone else's."""
    origin = consent_store.event_origin(session, event_id)
    if origin is None:
        return False
    channel, recorded_by, evidence = origin
    session_origin = str(evidence.get("session_origin", "customer"))
    return (
        channel == Channel.SELFSERVICE.value
        and recorded_by == consent_service.customer_actor(customer_id)
        and not session_origin.startswith(NOT_OWN_ORIGINS)
        and session_origin != OPERATOR_ORIGIN
    )


def apply_gpc(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    started: SelfserviceSession,
    language: str,
    evidence: dict[str, Any],
    by: Caller,
    now: datetime | None = None,
) -> list[str]:
    """``Sec-GPC: 1`` on the first request of a session: record a refusal (method ``gpc``) for
    every purpose marked ``gpc_opt_out`` — unless it is already refused or withdrawn, or its
    current decision is a grant the customer made on this page (an explicit choice there
    outweighs the browser's general signal). Returns the purposes refused; the session keeps
    them to tell the customer."""
    now = now or utcnow()
    customer_id = started.customer_id
    refused: list[str] = []
    for purpose in policy.purposes.values():
        if not purpose.gpc_opt_out or not purpose.needs_consent:
            continue
        state = consent_store.read_state(session, customer_id, purpose.id)
        status = consent_rules.effective_status(state, purpose, now)
        if status in (EffectiveStatus.REFUSED, EffectiveStatus.WITHDRAWN):
            continue
        if state is not None and _customers_own(session, customer_id, state.event_id):
            continue
        consent_service.record_event(
            session=session,
            policy=policy,
            signer=signer,
            settings=settings,
            customer_id=customer_id,
            purpose=purpose.id,
            status="refused",
            channel=Channel.SELFSERVICE.value,
            method="gpc",
            actor="customer",
            by=by,
            language=language,
            evidence={**evidence, "gpc": True},
            now=now,
        )
        refused.append(purpose.id)
    if refused:
        started.gpc_refused = " ".join(refused)
        session.add(started)
        session.flush()
    return refused


# --- preferences: contact channels, topics, frequency, pause ---------------------------------

MAX_CHOICES = 32  # more checkboxes than any purpose declares is not a form of this page


def preference_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """The page's evidence for a preference change: IP (truncated by the service), user agent,
    language and session origin; the GPC signal is about consent, not about these filters."""
    return {k: v for k, v in evidence.items() if k != "gpc"}


def _purpose_with_choices(policy: Policy, purpose_id: str) -> Purpose:
    for purpose in preferences_service.purposes_with_choices(policy):
        if purpose.id == purpose_id:
            return purpose
    raise UnknownPurpose()


def _may_contact(session: Session, policy: Policy, customer_id: UUID, purpose: Purpose) -> bool:
    """Whether the purpose may contact the customer at all: an effective grant (for a consent
    purpose) and no objection that stops it. Only then does the page offer its forms."""
    objections = customers_service.get_customer(session, customer_id).objection_set
    if purpose.id in objections or (purpose.direct_marketing and DIRECT_MARKETING in objections):
        return False
    if not purpose.needs_consent:
        return True
    state = consent_store.read_state(session, customer_id, purpose.id)
    return consent_rules.effective_status(state, purpose, utcnow()) == EffectiveStatus.GRANTED


def _record(
    session: Session,
    policy: Policy,
    customer_id: UUID,
    change: dict[str, Any],
    evidence: dict[str, Any],
    by: Caller,
    now: datetime | None,
) -> preferences_service.ChangeResult:
    return preferences_service.change(
        session=session,
        policy=policy,
        customer_id=customer_id,
        change=change,
        channel=Channel.SELFSERVICE.value,
        by=by,
        actor="customer",
        evidence=preference_evidence(evidence),
        now=now,
    )


def change_preferences(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    purpose: str,
    kind: str,
    values: list[str],
    evidence: dict[str, Any],
    by: Caller,
    now: datetime | None = None,
) -> preferences_service.ChangeResult:
    """One preference form of one purpose: ``kind`` ``contact_channels`` (``values``: the
    channels ticked; the purpose's others go off), ``topics`` (the topics ticked; the others
    go off) or ``frequency`` (``values``: the one chosen). Every value must be the purpose's
    (else the 422 of the preference service, and nothing is written); a purpose that may not
    contact the customer is 409 ``preferences_not_applicable``. Recorded through
    :func:`vault.preferences.service.change` with channel ``selfservice``."""
    chosen = _purpose_with_choices(policy, purpose)
    if len(values) > MAX_CHOICES:
        raise InvalidRequest("Too many choices.", code="invalid_preference_value")
    if not _may_contact(session, policy, customer_id, chosen):
        raise PreferencesNotApplicable()
    ticked = set(values)
    if kind == "contact_channels":
        names = [c.value for c in chosen.contact_channels]
        if ticked - set(names):
            raise UnknownContactChannel()
        change: dict[str, Any] = {"contact_channels": {c: c in ticked for c in names}}
    elif kind == "topics":
        names = [t.id for t in chosen.topics]
        if ticked - set(names):
            raise UnknownTopic()
        change = {"topics": {chosen.id: {t: t in ticked for t in names}}}
    elif kind == "frequency":
        change = {"frequency": {chosen.id: values[0] if len(values) == 1 else ""}}
    else:  # the routes name the kind; anything else is a programming error
        raise ValueError(kind)
    return _record(session, policy, customer_id, change, evidence, by, now)


def pause(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    until: str | None,
    evidence: dict[str, Any],
    by: Caller,
    now: datetime | None = None,
) -> preferences_service.ChangeResult:
    """Pause every contact until the day ``until`` (the rule is
    :func:`vault.preferences.service.pause_until`), or end the pause (``until`` None)."""
    now = now or utcnow()
    end = preferences_service.pause_until(until, now) if until is not None else None
    return _record(session, policy, customer_id, {"paused_until": end}, evidence, by, now)


# --- data-subject rights: the DSR services, with the customer as actor --------------------------


def objection(
    *,
    session: Session,
    policy: Policy,
    customer_id: UUID,
    scope: str,
    withdraw: bool,
    by: Caller,
) -> None:
    """Object (Art. 21) to direct marketing or a legitimate-interest purpose, or withdraw the
    objection, through :mod:`vault.dsr.service` (which audits it and emits the event)."""
    fn = dsr_rights.withdraw_objection if withdraw else dsr_rights.object_to
    fn(
        session=session,
        policy=policy,
        customer_id=customer_id,
        scope=scope,
        by=by,
    )


def export(
    *,
    session: Session,
    envelope: Envelope,
    policy: Policy,
    customer_id: UUID,
    by: Caller,
) -> dict[str, Any]:
    """The full Art. 15/20 export document (audited and recorded by the DSR service)."""
    return dsr_export.export(
        session=session,
        envelope=envelope,
        policy=policy,
        customer_id=customer_id,
        by=by,
        kind="portability",
    )


def erase(
    *,
    session: Session,
    customer_id: UUID,
    confirmed: bool,
    by: Caller,
    notary: dsr_erasure.Notary,
) -> dsr_erasure.Erased:
    """Erase the customer (crypto-shredding by the DSR service, which also ends every session
    of theirs) after the explicit confirmation."""
    if not confirmed:
        raise ErasureNotConfirmed()
    return dsr_erasure.erase(session=session, customer_id=customer_id, by=by, notary=notary)
