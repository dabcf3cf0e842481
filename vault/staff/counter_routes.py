"""The counter's pages (roles ``store`` and ``call_center``) under /staff/customers.

Thin routes over :mod:`vault.staff.counter`: each takes its member from
``require_role(STORE, CALL_CENTER)`` (CSRF on every form), builds the :class:`Counter` from the
account (never from a form) and calls one service function. The search is a POST, so an
e-mail address or phone number never appears in a URL, a log line or the browser history;
found, it goes on to the customer's page by id (303), not found it says so and nothing else.
The self-service link and the double opt-in mail go to the customer's stored address; the
pages say that a mail was queued, never its link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from vault.db import SessionDep
from vault.dsr.schemas import RequestKind
from vault.errors import CustomerNotFound
from vault.http import NO_STORE
from vault.ratelimit import RateLimited
from vault.runtime import RuntimeDep
from vault.selfservice import dossier as selfservice_words
from vault.selfservice import i18n as selfservice_i18n
from vault.selfservice import sessions as selfservice_sessions
from vault.selfservice import summary as selfservice_summary
from vault.staff import counter
from vault.staff.accounts import Role
from vault.staff.i18n import gettext
from vault.staff.pages import N_, LangDep, StaffMember, StaffPageRoute, page, require_role

router = APIRouter(route_class=StaffPageRoute, include_in_schema=False)

Desk = Annotated[StaffMember, Depends(require_role(Role.STORE, Role.CALL_CENTER))]

SEARCH_LABELS = {
    "phone": N_("Phone number"),
    "email": N_("E-mail address"),
    "loyalty_number": N_("Loyalty card number"),
}
STATEMENT_LABELS = {
    "granted": N_("The customer agrees (grant)"),
    "withdrawn": N_("The customer withdraws their consent"),
    "refused": N_("The customer declines (refusal)"),
}
REQUEST_LABELS = {
    RequestKind.ACCESS: N_("Access to their data (Art. 15)"),
    RequestKind.RECTIFICATION: N_("Correction of their data (Art. 16)"),
    RequestKind.ERASURE: N_("Erasure (Art. 17)"),
    RequestKind.RESTRICTION: N_("Restriction of processing (Art. 18)"),
    RequestKind.PORTABILITY: N_("A copy of their data to take along (Art. 20)"),
    RequestKind.OBJECTION: N_("Objection (Art. 21)"),
}
SCRIPT_ERRORS = {
    "script_required": N_("Choose the text you read out to the customer."),
    "script_not_applicable": N_("This text does not cover this purpose here."),
    "script_version_outdated": N_(
        "The text has changed since this page was opened. Read the current text below to the "
        "customer, then record again."
    ),
}
CONTACT_LABELS = {
    "email": N_("E-mail"),
    "sms": N_("Text message"),
    "push": N_("Push notification"),
    "post": N_("Post"),
    "phone": N_("Phone"),
}
PREFERENCE_SAVED = {
    "choices": N_("Saved: what the customer receives has been recorded as they said."),
    "paused": N_("Saved: the pause has been recorded."),
    "resumed": N_("Saved: the pause has ended."),
}
REASONS = {
    "restricted": N_("processing is restricted (Art. 18): nothing is shown"),
    "objected": N_("the customer has objected"),
}


def _counter(runtime, member: StaffMember) -> counter.Counter:
    return counter.counter_for(
        runtime.policy,
        staff_id=member.id,
        role=member.role,
        store=member.store,
        request_id=member.request_id,
    )


def _words(lang: str):
    """The consent dossier's words for statuses and channels (the /me catalogue)."""
    ss = selfservice_i18n.translations(lang).gettext

    def status(code: str) -> str:
        return ss(selfservice_words.STATUS[code]) if code in selfservice_words.STATUS else code

    def channel(code: str) -> str:
        return ss(selfservice_words.CHANNEL[code]) if code in selfservice_words.CHANNEL else code

    return status, channel


def _preference_words(policy, lang: str, customer_id: UUID):
    """Plain words for the card's preference part: the /me sentence per purpose, and for a
    ledger change what changed ("E-mail off, Wine on, at most once a month") and who recorded
    it ("call centre, staff ab12", "self-service page, the customer")."""
    _ = gettext(lang)
    ss = selfservice_i18n.translations(lang).gettext
    _status, channel = _words(lang)

    def contact(code: str) -> str:
        return _(CONTACT_LABELS[code]) if code in CONTACT_LABELS else code

    def topic(purpose, tid: str) -> str:
        t = purpose.topic(tid)
        return t.label.get(lang) if t is not None else tid

    def what(change: dict, purpose) -> str:
        parts = []
        own = {c.value for c in purpose.contact_channels}
        for c, on in change.get("contact_channels", {}).items():
            if c in own:
                parts.append((_("%(what)s on") if on else _("%(what)s off")) % {"what": contact(c)})
        for tid, on in change.get("topics", {}).get(purpose.id, {}).items():
            label = topic(purpose, tid)
            parts.append((_("%(what)s on") if on else _("%(what)s off")) % {"what": label})
        freq = change.get("frequency", {}).get(purpose.id)
        if freq in selfservice_summary.FREQUENCY:
            parts.append(ss(selfservice_summary.FREQUENCY[freq]))
        if "paused_until" in change:
            until = change["paused_until"]
            if until:
                when = selfservice_i18n.format_day(datetime.fromisoformat(until), lang)
                parts.append(_("paused until %(date)s") % {"date": when})
            else:
                parts.append(_("pause ended"))
        return ", ".join(parts)

    def who(h) -> str:
        place = channel(h.channel)
        if h.store_id:
            place = f"{place} ({store_name(h.store_id)})"
        if h.recorded_by.startswith(counter.STAFF + ":"):
            by = _("staff %(id)s") % {"id": h.recorded_by.split(":", 1)[1]}
        elif h.recorded_by == f"customer:{customer_id}":
            by = _("the customer")
        else:
            by = h.recorded_by
        return f"{place}, {by}"

    def store_name(sid: str) -> str:
        return policy.stores[sid].name.get(lang) if sid in policy.stores else sid

    def sentence(view, purpose) -> str:
        return selfservice_summary.summary(view, purpose, lang)

    return contact, what, who, sentence


def _search_page(request, member, lang, *, by="phone", error=None, status_code=200):
    _ = gettext(lang)
    return page(
        request,
        "counter_search.html",
        lang=lang,
        title=_("Find a customer"),
        member=member,
        search_by=[(k, _(v)) for k, v in SEARCH_LABELS.items()],
        by=by,
        error=error,
        status_code=status_code,
    )


@router.get("/staff/customers", operation_id="staff_customers")
def search_form(request: Request, member: Desk, lang: LangDep):
    """The search form: by phone, e-mail or loyalty card number."""
    return _search_page(request, member, lang)


@router.post("/staff/customers/find", operation_id="staff_customers_find")
def find(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Desk,
    lang: LangDep,
    by: Annotated[str, Form(max_length=32)] = "phone",
    value: Annotated[str, Form(max_length=320)] = "",
):
    """Exactly one customer (303 to their page) or "not found" (404); never a list."""
    who = _counter(runtime, member)
    _ = gettext(lang)
    try:
        customer_id = counter.find_customer(
            session=session,
            envelope=runtime.envelope,
            policy=runtime.policy,
            counter=who,
            by=by,
            value=value,
        )
    except CustomerNotFound:
        # no exception leaves the route: the search's audit event commits with the page
        return _search_page(
            request,
            member,
            lang,
            by=by,
            error=_("No customer found. Check the spelling, or ask for another detail."),
            status_code=404,
        )
    except counter.InvalidSearch:
        return _search_page(
            request,
            member,
            lang,
            error=_("Choose what to search by and type what the customer tells you."),
            status_code=422,
        )
    return RedirectResponse(f"/staff/customers/{customer_id}", status_code=303, headers=NO_STORE)


@router.get("/staff/customers/{customer_id}", operation_id="staff_customer")
def customer(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Desk,
    lang: LangDep,
    customer_id: UUID,
    saved: str = "",
):
    """The customer's card: consents with history, preferences with history, the values the
    role may see, actions. ``?saved=`` names the confirmation of a preference form."""
    who = _counter(runtime, member)
    card = counter.customer_card(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        counter=who,
        customer_id=customer_id,
    )
    _ = gettext(lang)
    status, channel = _words(lang)
    policy = runtime.policy
    contact, pref_what, pref_who, sentence = _preference_words(policy, lang, customer_id)
    return page(
        request,
        "counter_customer.html",
        lang=lang,
        title=_("Customer"),
        member=member,
        card=card,
        policy=policy,
        status=status,
        channel=channel,
        reason=lambda code: _(REASONS[code]) if code in REASONS else code,
        store_name=lambda sid: policy.stores[sid].name.get(lang) if sid in policy.stores else sid,
        scripts={p.id: counter.scripts_for(policy, who, p.id) for p in card.consents},
        value_text=lambda name, v: selfservice_i18n.attribute_value(
            policy.attributes.get(name), v, lang
        ),
        request_kinds=[(k.value, _(v)) for k, v in REQUEST_LABELS.items()],
        contact=contact,
        pref_what=pref_what,
        pref_who=pref_who,
        sentence=sentence,
        frequency_text=lambda f: selfservice_i18n.translations(lang).gettext(
            selfservice_summary.FREQUENCY.get(f, f)
        ),
        paused_day=(
            selfservice_i18n.format_day(card.preference_view.paused_until, lang)
            if card.preference_view.paused_until is not None
            and card.preference_view.paused_until > counter.utcnow()
            else None
        ),
        saved=_(PREFERENCE_SAVED[saved]) if saved in PREFERENCE_SAVED else None,
    )


@router.get("/staff/customers/{customer_id}/consents/{purpose}", operation_id="staff_consent_form")
def statement_form(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Desk,
    lang: LangDep,
    customer_id: UUID,
    purpose: str,
):
    """The statement form of one purpose: the script to read out, and what the customer said."""
    who = _counter(runtime, member)
    the_purpose = counter.consent_service.consent_purpose(runtime.policy, purpose)
    counter.customers_service.get_customer(session, customer_id)
    _ = gettext(lang)
    return page(
        request,
        "counter_statement.html",
        lang=lang,
        title=_("Record a statement: %(purpose)s") % {"purpose": the_purpose.title.get(lang)},
        member=member,
        customer_id=customer_id,
        purpose=the_purpose,
        scripts=counter.scripts_for(runtime.policy, who, the_purpose.id),
        statements=[(k, _(v)) for k, v in STATEMENT_LABELS.items()],
        error=None,
    )


@router.post("/staff/customers/{customer_id}/consents/{purpose}", operation_id="staff_consent")
def record(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Desk,
    lang: LangDep,
    customer_id: UUID,
    purpose: str,
    status: Annotated[str, Form(max_length=32)] = "",
    script: Annotated[str, Form(max_length=64)] = "",
    language: Annotated[str, Form(max_length=8)] = "de",
):
    """Record the customer's statement; the script is ``<id>.v<version>`` as the form showed
    it (a newer version in the meantime: 409, read the new text)."""
    who = _counter(runtime, member)
    script_id, _sep, version = script.partition(".v")
    try:
        result = counter.record_statement(
            session=session,
            policy=runtime.policy,
            signer=runtime.signer,
            settings=runtime.settings,
            envelope=runtime.envelope,
            counter=who,
            customer_id=customer_id,
            purpose=purpose,
            status=status,
            script_id=script_id or None,
            script_version=int(version) if version.isdigit() and len(version) < 6 else None,
            language=language if language in selfservice_i18n.LANGUAGES else "de",
        )
    except (counter.ScriptRequired, counter.ScriptNotApplicable, counter.ScriptOutdated) as exc:
        _ = gettext(lang)
        the_purpose = runtime.policy.purposes[purpose]
        return page(
            request,
            "counter_statement.html",
            lang=lang,
            title=_("Record a statement: %(purpose)s") % {"purpose": the_purpose.title.get(lang)},
            member=member,
            customer_id=customer_id,
            purpose=the_purpose,
            scripts=counter.scripts_for(runtime.policy, who, the_purpose.id),
            statements=[(k, _(v)) for k, v in STATEMENT_LABELS.items()],
            error=_(SCRIPT_ERRORS[exc.code]),
            status_code=exc.status,
        )
    _ = gettext(lang)
    if result.confirmation_delivery == "mail":
        text = _(
            "Recorded. The customer gets an e-mail and confirms there with one click; "
            "until then the consent is waiting for confirmation."
        )
    elif result.confirmation_delivery is not None:
        text = _(
            "Recorded, waiting for confirmation. The customer has no e-mail address on file, "
            "so no confirmation mail could be sent."
        )
    else:
        text = _("Recorded. The customer's receipt number is %(id)s.") % {"id": result.event.id}
    return page(
        request,
        "staff_message.html",
        lang=lang,
        title=_("Statement recorded"),
        member=member,
        text=text,
        next_link=(f"/staff/customers/{customer_id}", _("Back to the customer")),
    )


@router.post("/staff/customers/{customer_id}/pause", operation_id="staff_customer_pause")
def pause(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Desk,
    lang: LangDep,
    customer_id: UUID,
    # no max_length: a value too long is the friendly 422 page, not a JSON 422
    until: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "pause",
    language: Annotated[str, Form()] = "de",
):
    """The customer asks for no advertising until a day ("pause"), or to end the pause
    ("end"); 303 back to the card."""
    who = _counter(runtime, member)
    ending = action == "end"
    counter.record_pause(
        session=session,
        policy=runtime.policy,
        counter=who,
        customer_id=customer_id,
        until=None if ending else until,
        language=language if language in selfservice_i18n.LANGUAGES else "de",
    )
    state = "resumed" if ending else "paused"
    return RedirectResponse(
        f"/staff/customers/{customer_id}?saved={state}#preferences",
        status_code=303,
        headers=NO_STORE,
    )


@router.post(
    "/staff/customers/{customer_id}/preferences/{purpose}", operation_id="staff_preferences"
)
def preferences(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Desk,
    lang: LangDep,
    customer_id: UUID,
    purpose: str,
    contact_channel: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
    topic: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
    frequency: Annotated[str, Form()] = "",
    language: Annotated[str, Form()] = "de",
):
    """Record what the customer says they want from one purpose: the contact channels and
    topics ticked (the purpose's others off) and the frequency; 303 back to the card."""
    who = _counter(runtime, member)
    counter.record_preferences(
        session=session,
        policy=runtime.policy,
        counter=who,
        customer_id=customer_id,
        purpose=purpose,
        contact_channels=contact_channel,
        topics=topic,
        frequency=frequency or None,
        language=language if language in selfservice_i18n.LANGUAGES else "de",
    )
    return RedirectResponse(
        f"/staff/customers/{customer_id}?saved=choices#prefs-{purpose}",
        status_code=303,
        headers=NO_STORE,
    )


@router.post("/staff/customers/{customer_id}/link", operation_id="staff_customer_link")
def link(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Desk,
    lang: LangDep,
    customer_id: UUID,
):
    """Mail the customer a self-service link; the page never shows it."""
    who = _counter(runtime, member)
    _ = gettext(lang)
    try:
        runtime.limiter.hit("link_customer", str(customer_id))
    except RateLimited as exc:
        if exc.first:  # once a window, as on the API: the customer's history shows it
            selfservice_sessions.record_link_throttled(
                session, customer_id=customer_id, by=who.caller
            )
        response = page(
            request,
            "staff_message.html",
            lang=lang,
            title=_("No link sent"),
            member=member,
            text=_(
                "This customer has been sent several links in the last hour. Ask them to use "
                "the latest e-mail, or try again later."
            ),
            next_link=(f"/staff/customers/{customer_id}", _("Back to the customer")),
            status_code=exc.status,
        )
        response.headers.update(exc.headers() or {})
        return response
    counter.send_link(
        session=session,
        envelope=runtime.envelope,
        settings=runtime.settings,
        counter=who,
        customer_id=customer_id,
        language=lang,
    )
    return page(
        request,
        "staff_message.html",
        lang=lang,
        title=_("Link sent"),
        member=member,
        text=_(
            "The customer gets an e-mail with a link to their privacy page at the address we "
            "have on file. The link is only in that e-mail."
        ),
        next_link=(f"/staff/customers/{customer_id}", _("Back to the customer")),
    )


@router.post("/staff/customers/{customer_id}/requests", operation_id="staff_customer_request")
def start_request(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Desk,
    lang: LangDep,
    customer_id: UUID,
    kind: Annotated[str, Form(max_length=32)] = "",
):
    """Record a data-subject request the customer makes; the privacy office answers it."""
    who = _counter(runtime, member)
    row = counter.start_request(session=session, counter=who, customer_id=customer_id, kind=kind)
    _ = gettext(lang)
    when = selfservice_i18n.environment(lang).filters["datetime"](row.due_at)
    return page(
        request,
        "staff_message.html",
        lang=lang,
        title=_("Request recorded"),
        member=member,
        text=_(
            "The privacy office takes it from here and answers by %(due)s. Request number: %(id)s."
        )
        % {"due": when, "id": row.id},
        next_link=(f"/staff/customers/{customer_id}", _("Back to the customer")),
    )
