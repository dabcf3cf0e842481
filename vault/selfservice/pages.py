"""How the self-service pages are rendered: the page helper, the friendly error page (with the
texts of every refusal), the ``PageRoute`` that turns domain errors into it, and the session
dependencies (:class:`Visit`) that give a page its signed-in customer.

Errors become a friendly HTML page with the error's status (401, 403, 409, 410, 422), never the
JSON error body and never a 500 for a bad link. Every page is sent with ``no-store``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute

from vault.db import SessionDep
from vault.errors import VaultError
from vault.http import NO_STORE
from vault.provenance import Caller
from vault.runtime import RuntimeDep
from vault.selfservice import i18n, sessions
from vault.selfservice.errors import SessionRequired

SESSION_COOKIE = "vault_session"
LANG_COOKIE = "vault_lang"
COOKIE_PATH = "/me"


def N_(message: str) -> str:
    """Marks a message for extraction; translated where it is used."""
    return message


def language(request: Request) -> str:
    return i18n.negotiate(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


LangDep = Annotated[str, Depends(language)]


def secure(request: Request) -> bool:
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
            secure=secure(request),
        )
    return response


def translator(lang: str) -> Callable[[str], str]:
    return i18n.translations(lang).gettext


def error_page(request: Request, exc: VaultError) -> HTMLResponse:
    """The friendly page for a refused link, an ended session, a failed CSRF check …"""
    lang = language(request)
    _ = translator(lang)
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
        "erasure_incomplete": (
            _("Your data has been erased"),
            _("We are still removing the last traces of it from our storage."),
            _("Nothing more is needed from you; this finishes within minutes."),
        ),
        "erasure_not_confirmed": (
            _("Nothing was erased"),
            _("Please tick the box to confirm that your data should be erased."),
            "",
        ),
        "preferences_not_applicable": (
            _("Nothing was changed"),
            _(
                "Without your consent to this use we send you nothing for it, so there is "
                "nothing to choose."
            ),
            _("Switch the consent on first if you want to choose how we contact you."),
        ),
        "invalid_pause_date": (
            _("Nothing was changed"),
            _("Please choose a day from tomorrow on, within the next two years."),
            _("Go back and choose the day again."),
        ),
        "paused_until_in_past": (
            _("Nothing was changed"),
            _("Please choose a day from tomorrow on, within the next two years."),
            _("Go back and choose the day again."),
        ),
        **{
            code: (
                _("Nothing was changed"),
                _("We did not recognise one of your choices."),
                _("Go back, reload the page and choose again."),
            )
            for code in (
                "unknown_purpose",
                "unknown_topic",
                "unknown_frequency",
                "unknown_contact_channel",
                "invalid_preference_value",
                "nothing_to_change",
            )
        },
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
    if isinstance(exc, SessionRequired):
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


class PageRoute(APIRoute):
    """Domain errors of a page (its dependencies included) become the friendly error page.

    The app's error handler asks the matched route for ``render_error``; the error has by then
    passed through the request's transaction, so it rolled back (and an audited refusal wrote
    its audit row) exactly as on the JSON routes."""

    @staticmethod
    def render_error(request: Request, exc: VaultError) -> Response:
        return error_page(request, exc)


@dataclass(frozen=True)
class Visit:
    """The signed-in customer of this request: the session cookie's value and its customer."""

    token: str
    customer_id: UUID
    csrf: str
    gpc_refused: tuple[str, ...]
    request_id: str | None = None
    origin: str = ""  # who started the session (sessions.origin_of): consent evidence

    def __repr__(self) -> str:
        return f"Visit(customer_id={self.customer_id}, ***)"

    @property
    def caller(self) -> Caller:
        """The customer, in this request: who did what the page does."""
        return Caller(sessions.customer_actor(self.customer_id), self.request_id)


def current_visit(request: Request, session: SessionDep, runtime: RuntimeDep) -> Visit:
    token = request.cookies.get(SESSION_COOKIE) or ""
    row = sessions.open_session(session=session, settings=runtime.settings, token=token)
    return Visit(
        token,
        row.customer_id,
        sessions.csrf_token(token),
        tuple(row.gpc_refused.split()),
        request.state.request_id,
        row.origin,
    )


VisitDep = Annotated[Visit, Depends(current_visit)]


def maybe_visit(request: Request, session: SessionDep, runtime: RuntimeDep) -> Visit | None:
    """The signed-in customer, or None without a live session (/me then offers the form)."""
    try:
        return current_visit(request, session, runtime)
    except SessionRequired:
        return None


MaybeVisitDep = Annotated[Visit | None, Depends(maybe_visit)]


def posted_visit(visit: VisitDep, csrf_token: Annotated[str, Form()] = "") -> Visit:
    """A signed-in customer whose form carries the session's CSRF token (else 403 page)."""
    sessions.check_csrf(visit.token, csrf_token)
    return visit


PostedVisitDep = Annotated[Visit, Depends(posted_visit)]


def farewell(request: Request, lang: str, **texts: str) -> Response:
    """The last page of a session (logout, erasure): a message, and the cookie gone."""
    response = page(request, "message.html", lang=lang, **texts)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
