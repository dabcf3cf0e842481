"""Routes of the self-service page (HTML, under /me) and the one JSON route that issues links.

Pages take the customer only from the session cookie, never from the URL or a form. Every POST
carries the session's CSRF token. Errors become a friendly HTML page with the error's status
(401, 403, 409, 410, 422), never the JSON error body and never a 500 for a bad link.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from vault.auth.deps import require
from vault.auth.scopes import Scope
from vault.db import SessionDep
from vault.errors import CustomerErased, CustomerNotFound, Forbidden, NotAuthenticated, VaultError
from vault.errors import responses as error_responses
from vault.ratelimit import RateLimited, client_address
from vault.runtime import RuntimeDep
from vault.selfservice import i18n, service
from vault.selfservice.models import SelfserviceLinkPublic

SESSION_COOKIE = "vault_session"
LANG_COOKIE = "vault_lang"
COOKIE_PATH = "/me"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def N_(message: str) -> str:
    """Marks a message for extraction; translated where it is used."""
    return message


api_router = APIRouter(tags=["selfservice"])


@api_router.post(
    "/v1/customers/{customer_id}/selfservice-link",
    operation_id="issue_selfservice_link",
    response_model=SelfserviceLinkPublic,
    responses=error_responses(
        NotAuthenticated, Forbidden, CustomerNotFound, CustomerErased, RateLimited
    ),
)
def issue_selfservice_link(
    customer_id: UUID,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: require(Scope.SELFSERVICE_ISSUE),
    response: Response,
) -> dict:
    """A single-use magic link to the customer's self-service page, valid 15 minutes.

    Rate-limited per customer (429 with Retry-After), so nobody is flooded with links."""
    try:
        runtime.limiter.hit("link_customer", str(customer_id))
    except RateLimited as exc:
        if exc.first:  # once a window: the customer's history shows the flood was stopped
            service.record_link_throttled(
                session=session,
                customer_id=customer_id,
                issued_by=principal.actor,
                request_id=request.state.request_id,
            )
            session.commit()  # the error would roll the request's transaction back
        raise
    link = service.issue_link(
        session=session,
        settings=runtime.settings,
        customer_id=customer_id,
        issued_by=principal.actor,
        request_id=request.state.request_id,
    )
    response.headers.update(NO_STORE)
    return {"url": link.url, "expires_at": link.expires_at}


# --- pages ------------------------------------------------------------------------------------


def language(request: Request) -> str:
    return i18n.negotiate(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


LangDep = Annotated[str, Depends(language)]


def _secure(request: Request) -> bool:
    return request.app.state.runtime.settings.public_url.startswith("https://")


def page(
    request: Request,
    template: str,
    *,
    lang: str,
    title: str,
    csrf: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page in ``lang``: never cached, the language cookie set when ``?lang=`` chose."""
    policy = request.app.state.runtime.policy
    controller = policy.controller
    html = i18n.render(
        template,
        lang,
        title=title,
        csrf=csrf,
        here=request.url.path if request.method == "GET" else "/me",
        company=controller.get("name", ""),
        address=controller.get("address", ""),
        policy_url=controller.get("policy_url", ""),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=NO_STORE)
    if request.query_params.get("lang") in i18n.LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=365 * 86400,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=_secure(request),
        )
    return response


def _gettext(lang: str) -> Callable[[str], str]:
    return i18n.translations(lang).gettext


def error_page(request: Request, exc: VaultError) -> HTMLResponse:
    """The friendly page for a refused link, an ended session, a failed CSRF check …"""
    lang = language(request)
    _ = _gettext(lang)
    texts: dict[str, tuple[str, str, str]] = {
        "selfservice_link_invalid": (
            _("This link is not valid"),
            _("Please use the complete link from your e-mail."),
            _("If it still does not work, ask for a new link in our app or web shop."),
        ),
        "selfservice_link_used": (
            _("This link has already been used"),
            _("For your security each link works only once."),
            _("Ask for a new link in our app or web shop."),
        ),
        "selfservice_link_expired": (
            _("This link has expired"),
            _("For your security each link works only for 15 minutes."),
            _("Ask for a new link in our app or web shop."),
        ),
        "selfservice_session_required": (
            _("Please sign in again"),
            _("You are not signed in, or your session has ended."),
            _("Open a new link from your e-mail to see your data."),
        ),
        "csrf_refused": (
            _("The form could not be verified"),
            _("For your security we did not make this change."),
            _("Go back, reload the page and try again."),
        ),
        "customer_erased": (
            _("Your data has been erased"),
            _("There is no longer any customer profile for this link."),
            "",
        ),
        "legal_hold": (
            _("We cannot erase your data yet"),
            _("We must keep your data for a legal reason at the moment."),
            _("Please contact our data protection team; they will tell you why and for how long."),
        ),
        "erasure_not_confirmed": (
            _("Nothing was erased"),
            _("Please tick the box to confirm that your data should be erased."),
            "",
        ),
        "rate_limited": (
            _("Too many attempts"),
            _("For your security we have paused sign-ins from your connection for a moment."),
            _("Please wait a few minutes, then open the link from your e-mail again."),
        ),
    }
    title, text, next_step = texts.get(
        exc.code,
        (
            _("Something went wrong"),
            _("Your request could not be carried out."),
            _("Go back and try again."),
        ),
    )
    response = page(
        request,
        "message.html",
        lang=lang,
        title=title,
        text=text,
        next_step=next_step,
        status_code=exc.status,
    )
    response.headers.update(exc.headers() or {})
    if isinstance(exc, service.SessionRequired):
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


class PageRoute(APIRoute):
    """Domain errors of a page (its dependencies included) become the friendly error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except VaultError as exc:
                return error_page(request, exc)

        return route_handler


router = APIRouter(route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True)
class Visit:
    """The signed-in customer of this request: the session cookie's value and its customer."""

    token: str
    customer_id: UUID
    csrf: str
    gpc_refused: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Visit(customer_id={self.customer_id}, ***)"


def current_visit(request: Request, session: SessionDep, runtime: RuntimeDep) -> Visit:
    token = request.cookies.get(SESSION_COOKIE) or ""
    row = service.open_session(session=session, settings=runtime.settings, token=token)
    return Visit(token, row.customer_id, service.csrf_token(token), tuple(row.gpc_refused.split()))


VisitDep = Annotated[Visit, Depends(current_visit)]


def posted_visit(visit: VisitDep, csrf_token: Annotated[str, Form()] = "") -> Visit:
    """A signed-in customer whose form carries the session's CSRF token (else 403 page)."""
    service.check_csrf(visit.token, csrf_token)
    return visit


PostedVisitDep = Annotated[Visit, Depends(posted_visit)]


def _evidence(request: Request, lang: str) -> dict[str, Any]:
    return service.page_evidence(
        user_agent=request.headers.get("user-agent"),
        client_ip=request.client.host if request.client else None,
        language=lang,
        gpc=request.headers.get("sec-gpc", "").strip() == "1",
    )


def _gpc_titles(runtime: Any, visit: Visit, lang: str) -> list[str]:
    purposes = runtime.policy.purposes
    return [purposes[p].title.get(lang) for p in visit.gpc_refused if p in purposes]


@router.get("/me/login/{token}", operation_id="selfservice_login")
def login(token: str, request: Request, session: SessionDep, runtime: RuntimeDep, lang: LangDep):
    """Open a magic link once: start a session, then send the browser to /me (token gone).

    Failed attempts are counted per client address; past the limit the page answers 429
    (with Retry-After) before looking the token up, so links cannot be guessed at."""
    address = client_address(request)
    runtime.limiter.check("login_failures_ip", address)
    try:
        started = service.consume_link(
            session=session,
            settings=runtime.settings,
            token=token,
            request_id=request.state.request_id,
        )
    except (service.LinkInvalid, service.LinkUsed, service.LinkExpired):
        runtime.limiter.charge("login_failures_ip", address)
        raise
    if request.headers.get("sec-gpc", "").strip() == "1":
        service.apply_gpc(
            session=session,
            policy=runtime.policy,
            signer=runtime.signer,
            settings=runtime.settings,
            started=started.row,
            language=lang,
            evidence=_evidence(request, lang),
            request_id=request.state.request_id,
        )
    response = RedirectResponse("/me", status_code=303, headers=NO_STORE)
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return response


@router.get("/me", operation_id="selfservice_overview")
def overview(
    request: Request, session: SessionDep, runtime: RuntimeDep, visit: VisitDep, lang: LangDep
):
    view = service.consents_view(
        session=session, policy=runtime.policy, customer_id=visit.customer_id, lang=lang
    )
    name = service.first_name(
        session=session, envelope=runtime.envelope, customer_id=visit.customer_id
    )
    return page(
        request,
        "overview.html",
        lang=lang,
        title=_gettext(lang)(N_("Overview")),
        csrf=visit.csrf,
        name=name,
        on=sum(1 for p in view.consent if p.status == "granted"),
        total=len(view.consent),
        gpc_refused=_gpc_titles(runtime, visit, lang),
        restricted=view.status == "restricted",
    )


@router.get("/me/consents", operation_id="selfservice_consents")
def consents(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    visit: VisitDep,
    lang: LangDep,
    saved: str | None = None,
):
    view = service.consents_view(
        session=session, policy=runtime.policy, customer_id=visit.customer_id, lang=lang
    )
    _ = _gettext(lang)
    message = None
    if saved == "direct_marketing":
        message = _("Your choice on direct marketing has been saved.")
    elif saved in runtime.policy.purposes:
        title = runtime.policy.purposes[saved].title.get(lang)
        message = _("Your choice for “%(title)s” has been saved.") % {"title": title}
    return page(
        request,
        "consents.html",
        lang=lang,
        title=_("My consents"),
        csrf=visit.csrf,
        view=view,
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
    service.change_consent(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        customer_id=visit.customer_id,
        purpose=purpose,
        status=status,
        language=lang,
        evidence=_evidence(request, lang),
        request_id=request.state.request_id,
    )
    return RedirectResponse(
        f"/me/consents?saved={purpose}#p-{purpose}", status_code=303, headers=NO_STORE
    )


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
    service.objection(
        session=session,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        scope=purpose,
        withdraw=action == "withdraw",
        request_id=request.state.request_id,
    )
    anchor = "direct-marketing" if purpose == "direct_marketing" else f"p-{purpose}"
    return RedirectResponse(
        f"/me/consents?saved={purpose}#{anchor}", status_code=303, headers=NO_STORE
    )


@router.get("/me/data", operation_id="selfservice_data")
def my_data(
    request: Request, session: SessionDep, runtime: RuntimeDep, visit: VisitDep, lang: LangDep
):
    items = service.my_data(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        lang=lang,
        request_id=request.state.request_id,
    )
    return page(
        request,
        "data.html",
        lang=lang,
        title=_gettext(lang)(N_("My data")),
        csrf=visit.csrf,
        items=items,
    )


@router.get("/me/activity", operation_id="selfservice_activity")
def activity(
    request: Request, session: SessionDep, runtime: RuntimeDep, visit: VisitDep, lang: LangDep
):
    uses = service.activity(
        session=session, policy=runtime.policy, customer_id=visit.customer_id, lang=lang
    )
    return page(
        request,
        "activity.html",
        lang=lang,
        title=_gettext(lang)(N_("Who used my data")),
        csrf=visit.csrf,
        uses=uses,
    )


@router.get("/me/export", operation_id="selfservice_export")
def export(request: Request, session: SessionDep, runtime: RuntimeDep, visit: VisitDep):
    """The full export as a JSON download."""
    document = service.export(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=visit.customer_id,
        request_id=request.state.request_id,
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
        title=_gettext(lang)(N_("Erase my data")),
        csrf=visit.csrf,
    )


@router.post("/me/erase", operation_id="selfservice_erase")
def erase(
    request: Request,
    session: SessionDep,
    visit: PostedVisitDep,
    lang: LangDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
):
    """Erase after the confirmation; the session and every link of the customer end with it."""
    service.erase(
        session=session,
        customer_id=visit.customer_id,
        confirmed=confirm == "yes",
        request_id=request.state.request_id,
    )
    _ = _gettext(lang)
    return _farewell(
        request,
        lang,
        title=_("Your data has been erased"),
        text=_("We have destroyed the key to your profile: nobody can read your data any more."),
        next_step=_("You can close this window."),
    )


@router.post("/me/logout", operation_id="selfservice_logout")
def logout(request: Request, session: SessionDep, visit: PostedVisitDep, lang: LangDep):
    service.end_session(
        session=session,
        token=visit.token,
        customer_id=visit.customer_id,
        request_id=request.state.request_id,
    )
    _ = _gettext(lang)
    return _farewell(
        request,
        lang,
        title=_("You have logged out"),
        text=_("Your session has ended."),
        next_step=_("To come back, open a new link from your e-mail."),
    )


def _farewell(request: Request, lang: str, **texts: str) -> Response:
    """The last page of a session (logout, erasure): a message, and the cookie gone."""
    response = page(request, "message.html", lang=lang, **texts)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
