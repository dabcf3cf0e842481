"""Routes of the self-service page (HTML, under /me) and the one JSON route that issues links.

Pages take the customer only from the session cookie, never from the URL or a form. Every POST
carries the session's CSRF token. Rendering, the error page and the session dependencies are in
:mod:`vault.selfservice.pages`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from vault.auth.deps import LinkIssuer
from vault.db import SessionDep
from vault.dsr import erasure as dsr_erasure
from vault.dsr.errors import ErasureIncomplete
from vault.errors import CustomerErased, CustomerNotFound
from vault.errors import responses as error_responses
from vault.provenance import Caller
from vault.ratelimit import RateLimited, client_address
from vault.runtime import RuntimeDep
from vault.selfservice import actions, links, sessions, views
from vault.selfservice.errors import (
    CsrfRefused,
    LinkExpired,
    LinkUsed,
    NoEmailAddress,
    NotAnEmailAddress,
)
from vault.selfservice.pages import (
    COOKIE_PATH,
    N_,
    NO_STORE,
    SESSION_COOKIE,
    LangDep,
    MaybeVisitDep,
    PageRoute,
    PostedVisitDep,
    Visit,
    VisitDep,
    farewell,
    page,
    secure,
    translator,
)
from vault.selfservice.schemas import SelfserviceLinkMailed

api_router = APIRouter(tags=["selfservice"])


@api_router.post(
    "/v1/customers/{customer_id}/selfservice-link",
    operation_id="issue_selfservice_link",
    status_code=202,
    response_model=SelfserviceLinkMailed,
    responses=error_responses(CustomerNotFound, CustomerErased, NoEmailAddress, RateLimited),
)
def issue_selfservice_link(
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: LinkIssuer,
    response: Response,
) -> dict:
    """Mail the customer a single-use link to their self-service page (valid 15 minutes) at
    their stored e-mail address: 202 once the mail is queued; the link is never in the answer.

    409 ``customer_has_no_email`` without a stored address. Rate-limited per customer (429
    with Retry-After), so nobody is flooded with links."""
    try:
        runtime.limiter.hit("link_customer", str(customer_id))
    except RateLimited as exc:
        if exc.first:  # once a window: the customer's history shows the flood was stopped
            exc.audited(
                partial(
                    sessions.record_link_throttled,
                    customer_id=customer_id,
                    by=principal.caller,
                )
            )
        raise
    mailed = links.mail_link(
        session=session,
        envelope=runtime.envelope,
        settings=runtime.settings,
        customer_id=customer_id,
        by=principal.caller,
    )
    response.headers.update(NO_STORE)
    return {"mail_id": mailed.mail_id, "expires_at": mailed.expires_at}


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _evidence(request: Request, lang: str, origin: str) -> dict[str, Any]:
    return actions.page_evidence(
        user_agent=request.headers.get("user-agent"),
        client_ip=request.client.host if request.client else None,
        language=lang,
        gpc=request.headers.get("sec-gpc", "").strip() == "1",
        session_origin=origin,
    )


def _gpc_titles(runtime: Any, visit: Visit, lang: str) -> list[str]:
    purposes = runtime.policy.purposes
    return [purposes[p].title.get(lang) for p in visit.gpc_refused if p in purposes]


@router.get("/me/login/{token}", operation_id="selfservice_login")
def login(token: str, request: Request, session: SessionDep, runtime: RuntimeDep, lang: LangDep):
    """Open a magic link once: start a session, then send the browser to /me (token gone).

    A used or expired link opened again by the browser that is signed in with it (same
    customer, live session) leads back to /me. Every attempt is charged to the client
    address's failure budget before the token is looked up (past the limit: 429 with
    Retry-After), and refunded when it opens a session or leads back to /me, so parallel
    guesses cannot all pass a check made before the first of them failed."""
    address = client_address(request)
    charge = runtime.limiter.charge_first("login_failures_ip", address)
    try:
        started = sessions.consume_link(
            session=session,
            settings=runtime.settings,
            token=token,
            request_id=request.state.request_id,
        )
    except (LinkUsed, LinkExpired):
        if sessions.signed_in_with_link(
            session=session,
            settings=runtime.settings,
            token=token,
            cookie=request.cookies.get(SESSION_COOKIE),
        ):
            runtime.limiter.refund(charge)
            return RedirectResponse("/me", status_code=303, headers=NO_STORE)
        raise
    runtime.limiter.refund(charge)
    if request.headers.get("sec-gpc", "").strip() == "1":
        actions.apply_gpc(
            session=session,
            policy=runtime.policy,
            signer=runtime.signer,
            settings=runtime.settings,
            started=started.row,
            language=lang,
            evidence=_evidence(request, lang, started.row.origin),
            by=Caller(sessions.customer_actor(started.row.customer_id), request.state.request_id),
        )
    response = RedirectResponse("/me", status_code=303, headers=NO_STORE)
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )
    return response


@router.get("/me", operation_id="selfservice_overview")
def overview(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: MaybeVisitDep,
    lang: LangDep,
):
    """The overview; without a live session, the form that mails the customer a link."""
    if visit is None:
        return _link_form(request, lang)
    view = views.consents_view(
        session=session, policy=runtime.policy, customer_id=visit.customer_id, lang=lang
    )
    name = views.first_name(
        session=session, envelope=runtime.envelope, customer_id=visit.customer_id
    )
    return page(
        request,
        "overview.html",
        lang=lang,
        title=translator(lang)(N_("Overview")),
        csrf=visit.csrf,
        name=name,
        on=len(view.granted),
        total=len(view.consent),
        pending=[p.title for p in view.pending],
        objected_direct_marketing=view.objected_direct_marketing,
        gpc_refused=_gpc_titles(runtime, visit, lang),
        restricted=view.status == "restricted",
    )


def _link_form(
    request: Request, lang: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    _ = translator(lang)
    response = page(
        request,
        "link_form.html",
        lang=lang,
        title=_("Sign in to your data"),
        error=error,
        status_code=status_code,
    )
    if SESSION_COOKIE in request.cookies:  # an ended session's cookie goes
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


def _no_sooner(runtime: RuntimeDep) -> Iterator[None]:
    """Declared before the session, so it ends after the commit: the answer leaves no sooner
    than ``VAULT_SELFSERVICE_LINK_REQUEST_SECONDS`` after the work began, known address or
    not (refusals, which tell nothing about the address, answer at once)."""
    started = time.monotonic()
    yield
    links.answer_no_sooner_than(started, runtime.settings.selfservice_link_request_seconds)


@router.post("/me/link", operation_id="selfservice_request_link")
def request_link(
    _floor: Annotated[None, Depends(_no_sooner, scope="function")],
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    lang: LangDep,
    email: Annotated[str, Form(max_length=links.MAX_ADDRESS)] = "",
):
    """ "Send me a link": the same page (bytes and time) whether the address is a customer's or
    not; rate-limited per client address and per address asked for, both charged first."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        raise CsrfRefused()  # another site's form would spend this browser's budget
    runtime.limiter.hit("link_request_ip", client_address(request))
    _ = translator(lang)
    try:
        address = links.normalise_address(runtime.policy, email)
    except NotAnEmailAddress:
        return _link_form(
            request, lang, error=_("Please enter your e-mail address."), status_code=422
        )
    runtime.limiter.hit("link_request_address", address)
    links.request_link(
        session=session,
        envelope=runtime.envelope,
        settings=runtime.settings,
        limiter=runtime.limiter,
        address=address,
        language=lang,
        request_id=request.state.request_id,
    )
    return page(
        request,
        "message.html",
        lang=lang,
        title=_("Please check your e-mail"),
        text=_(
            "If this address belongs to a customer account with us, we have just sent a link "
            "to it. The link works once, for 15 minutes."
        ),
        next_step=_("No e-mail after a few minutes? Check your spam folder, or ask again later."),
    )


@router.get("/me/consents", operation_id="selfservice_consents")
def consents(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: VisitDep,
    lang: LangDep,
    saved: str | None = None,
    no_email: str | None = None,
    prefs_saved: str | None = None,
    paused: str | None = None,
):
    view = views.consents_view(
        session=session, policy=runtime.policy, customer_id=visit.customer_id, lang=lang
    )
    prefs = views.preferences_view(
        session=session,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        consents=view,
        lang=lang,
    )
    _ = translator(lang)
    message = None
    if prefs_saved in prefs.purposes:
        message = _(
            "Your choices for “%(title)s” have been saved. You receive from us: %(summary)s."
        ) % {
            "title": prefs.purposes[prefs_saved].title,
            "summary": prefs.purposes[prefs_saved].summary,
        }
    elif paused == "on" and prefs.paused_day:
        message = _("Paused: you receive no advertising from us until %(date)s.") % {
            "date": prefs.paused_day
        }
    elif paused == "off":
        message = _("Your pause has ended: you receive again what you have chosen.")
    elif saved == "direct_marketing":
        message = _("Your choice on direct marketing has been saved.")
    elif saved in runtime.policy.purposes:
        title = runtime.policy.purposes[saved].title.get(lang)
        if any(p.id == saved for p in view.pending) and no_email:
            message = _(
                "“%(title)s” is waiting for your confirmation, but we have no e-mail address "
                "for you to send the confirmation link to. Please add one in our app or web shop."
            ) % {"title": title}
        elif any(p.id == saved for p in view.pending):
            message = _(
                "Almost done: please confirm “%(title)s” with the link in the e-mail we are "
                "sending you. Only then does your consent count."
            ) % {"title": title}
        else:
            message = _("Your choice for “%(title)s” has been saved.") % {"title": title}
    return page(
        request,
        "consents.html",
        lang=lang,
        title=_("My consents"),
        csrf=visit.csrf,
        view=view,
        prefs=prefs,
        saved=message,
        gpc_refused=_gpc_titles(runtime, visit, lang),
        restricted=view.status == "restricted",
    )


@router.post("/me/consents/{purpose}", operation_id="selfservice_change_consent")
def change_consent(
    purpose: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: PostedVisitDep,
    lang: LangDep,
    status: Annotated[str, Form(max_length=32)] = "",
):
    """Switch one consent on or off: one click either way."""
    result = actions.change_consent(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        customer_id=visit.customer_id,
        purpose=purpose,
        status=status,
        language=lang,
        evidence=_evidence(request, lang, visit.origin),
        by=visit.caller,
        envelope=runtime.envelope,
    )
    no_email = "&no_email=1" if result.confirmation_delivery == "no_email" else ""
    return RedirectResponse(
        f"/me/consents?saved={purpose}{no_email}#p-{purpose}", status_code=303, headers=NO_STORE
    )


def _redirect_saved(purpose: str) -> RedirectResponse:
    # ``purpose`` is one of the policy's (the action refused any other before this)
    return RedirectResponse(
        f"/me/consents?prefs_saved={purpose}#prefs-{purpose}", status_code=303, headers=NO_STORE
    )


@router.post("/me/preferences/pause", operation_id="selfservice_pause")
def pause(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: PostedVisitDep,
    lang: LangDep,
    # no max_length: a value too long is the friendly 422 page of the action, not a JSON 422
    until: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "pause",
):
    """Pause every contact until a day ("pause"), or end the pause ("end")."""
    ending = action == "end"
    actions.pause(
        session=session,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        until=None if ending else until,
        evidence=_evidence(request, lang, visit.origin),
        by=visit.caller,
    )
    state = "off" if ending else "on"
    return RedirectResponse(f"/me/consents?paused={state}#pause", status_code=303, headers=NO_STORE)


@router.post("/me/preferences/{purpose}/channels", operation_id="selfservice_contact_channels")
def change_contact_channels(
    purpose: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: PostedVisitDep,
    lang: LangDep,
    contact_channel: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
):
    """The contact channels of one purpose: those ticked on, the purpose's others off (an
    unticked checkbox sends nothing)."""
    actions.change_preferences(
        session=session,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        purpose=purpose,
        kind="contact_channels",
        values=contact_channel,
        evidence=_evidence(request, lang, visit.origin),
        by=visit.caller,
    )
    return _redirect_saved(purpose)


@router.post("/me/preferences/{purpose}/topics", operation_id="selfservice_topics")
def change_topics(
    purpose: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: PostedVisitDep,
    lang: LangDep,
    topic: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
):
    """The topics of one purpose: those ticked on, the others off."""
    actions.change_preferences(
        session=session,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        purpose=purpose,
        kind="topics",
        values=topic,
        evidence=_evidence(request, lang, visit.origin),
        by=visit.caller,
    )
    return _redirect_saved(purpose)


@router.post("/me/preferences/{purpose}/frequency", operation_id="selfservice_frequency")
def change_frequency(
    purpose: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: PostedVisitDep,
    lang: LangDep,
    frequency: Annotated[str, Form()] = "",  # compared with the policy's names, never echoed
):
    """How often one purpose may contact the customer at most (one radio button)."""
    actions.change_preferences(
        session=session,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        purpose=purpose,
        kind="frequency",
        values=[frequency],
        evidence=_evidence(request, lang, visit.origin),
        by=visit.caller,
    )
    return _redirect_saved(purpose)


@router.post("/me/objection", operation_id="selfservice_objection")
def objection(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: PostedVisitDep,
    purpose: Annotated[str, Form(max_length=64)] = "",
    action: Annotated[str, Form(max_length=16)] = "object",
):
    """Object to direct marketing or a legitimate-interest purpose (Art. 21), or withdraw it."""
    actions.objection(
        session=session,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        scope=purpose,
        withdraw=action == "withdraw",
        by=visit.caller,
    )
    anchor = "direct-marketing" if purpose == "direct_marketing" else f"p-{purpose}"
    return RedirectResponse(
        f"/me/consents?saved={purpose}#{anchor}", status_code=303, headers=NO_STORE
    )


@router.get("/me/data", operation_id="selfservice_data")
def my_data(
    request: Request, session: SessionDep, runtime: RuntimeDep, visit: VisitDep, lang: LangDep
):
    items = views.my_data(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        lang=lang,
        by=visit.caller,
    )
    return page(
        request,
        "data.html",
        lang=lang,
        title=translator(lang)(N_("My data")),
        csrf=visit.csrf,
        items=items,
    )


@router.get("/me/activity", operation_id="selfservice_activity")
def activity(
    request: Request, session: SessionDep, runtime: RuntimeDep, visit: VisitDep, lang: LangDep
):
    uses = views.activity(
        session=session, policy=runtime.policy, customer_id=visit.customer_id, lang=lang
    )
    return page(
        request,
        "activity.html",
        lang=lang,
        title=translator(lang)(N_("Who used my data")),
        csrf=visit.csrf,
        uses=uses,
    )


@router.get("/me/export", operation_id="selfservice_export_page")
def export_page(request: Request, visit: VisitDep, lang: LangDep):
    """What the download holds, and its button. Reads and records nothing: a GET (a prefetch,
    a link preview, a crawler with the cookie) must not file a data-subject request."""
    return page(
        request,
        "export.html",
        lang=lang,
        title=translator(lang)(N_("Take your data with you")),
        csrf=visit.csrf,
    )


@router.post("/me/export", operation_id="selfservice_export")
def export(request: Request, session: SessionDep, runtime: RuntimeDep, visit: PostedVisitDep):
    """The full export as a JSON download, on the page's button (CSRF-checked): recorded as
    the customer's Art. 15/20 request and audited by the DSR service."""
    document = actions.export(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        by=visit.caller,
    )
    return Response(
        orjson.dumps(document, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={
            **NO_STORE,
            "Content-Disposition": 'attachment; filename="my-data.json"',
        },
    )


@router.get("/me/erase", operation_id="selfservice_erase_confirm")
def erase_confirm(request: Request, visit: VisitDep, lang: LangDep):
    return page(
        request,
        "erase.html",
        lang=lang,
        title=translator(lang)(N_("Erase my data")),
        csrf=visit.csrf,
    )


@router.post(
    "/me/erase",
    operation_id="selfservice_erase",
    responses=error_responses(ErasureIncomplete),
)
def erase(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: PostedVisitDep,
    lang: LangDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
):
    """Erase after the confirmation; the session and every link of the customer end with it."""
    actions.erase(
        session=session,
        customer_id=visit.customer_id,
        confirmed=confirm == "yes",
        by=visit.caller,
        notary=dsr_erasure.Notary.of(runtime),
    )
    _ = translator(lang)
    return farewell(
        request,
        lang,
        title=_("Your data has been erased"),
        text=_("We have destroyed the key to your profile: nobody can read your data any more."),
        next_step=_("You can close this window."),
    )


@router.post("/me/logout", operation_id="selfservice_logout")
def logout(request: Request, session: SessionDep, visit: PostedVisitDep, lang: LangDep):
    sessions.end_session(
        session=session,
        token=visit.token,
        customer_id=visit.customer_id,
        by=visit.caller,
    )
    _ = translator(lang)
    return farewell(
        request,
        lang,
        title=_("You have logged out"),
        text=_("Your session has ended."),
        next_step=_("To come back, open a new link from your e-mail."),
    )
