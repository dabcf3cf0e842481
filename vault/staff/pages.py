"""How staff console pages are rendered and who may see them.

- :func:`page` renders a template of :mod:`vault.staff.i18n` in the request's language (never
  cached; ``?lang=`` sets the language cookie, ``Path=/staff``). The CSP and the other security
  headers are the edge's (:mod:`vault.http`), the same as on /me: no script, no external asset.
- :class:`StaffPageRoute` turns domain errors into a friendly page with the error's status;
  without a live session a GET goes to the sign-in form (303) instead, anything else is 403.
- :func:`require_role` is the one door of every page behind the sign-in: the live session's
  :class:`StaffMember` if their role is one of ``roles`` (else 403), and on every method but
  GET/HEAD the form's ``csrf_token`` checked against the session (else 403).

Sub-routers of the role areas use ``APIRouter(route_class=StaffPageRoute,
include_in_schema=False)`` and are included in :data:`vault.staff.routes.router`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlmodel import Session

from vault.db import SessionDep
from vault.errors import VaultError
from vault.http import NO_STORE
from vault.provenance import Caller
from vault.runtime import Runtime, RuntimeDep
from vault.staff import accounts, i18n, sessions
from vault.staff.accounts import Role
from vault.staff.errors import StaffRoleRefused, StaffSessionRequired

SESSION_COOKIE = "vault_staff_session"
LOGIN_COOKIE = "vault_staff_login"  # the sign-in form's CSRF nonce (double submit)
LANG_COOKIE = "vault_lang"
COOKIE_PATH = "/staff"
HOME = "/staff"
_SAFE = frozenset({"GET", "HEAD"})


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


def set_cookie(request: Request, response: Response, name: str, value: str, **kw: Any) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        **kw,
    )


@dataclass(frozen=True)
class StaffMember:
    """The signed-in member of staff of this request (from the session, never from a form)."""

    id: str
    name: str
    role: str
    store: str | None
    token: str  # the session cookie's value
    csrf: str
    request_id: str | None = None

    def __repr__(self) -> str:
        return f"StaffMember(id={self.id!r}, role={self.role!r}, ***)"

    @property
    def actor(self) -> str:
        return accounts.actor(self.id)

    @property
    def caller(self) -> Caller:
        """The staff member, in this request: who did what the page does (``staff:<id>``)."""
        return Caller(self.actor, self.request_id)


# What each role may do: the start page's links (href, label), in this order. The areas'
# pages live under these paths.
AREAS: dict[str, tuple[tuple[str, str], ...]] = {
    Role.STORE: (("/staff/customers", N_("Find a customer")),),
    Role.CALL_CENTER: (("/staff/customers", N_("Find a customer")),),
    Role.PRIVACY_OFFICER: (
        ("/staff/office", N_("Privacy office")),
        ("/staff/office/requests", N_("Data-subject requests")),
    ),
    Role.AUDITOR: (("/staff/audit", N_("Audit log")),),
}
ROLE_NAMES = {
    Role.STORE: N_("Store"),
    Role.CALL_CENTER: N_("Call centre"),
    Role.PRIVACY_OFFICER: N_("Privacy office"),
    Role.AUDITOR: N_("Auditor"),
}


def page(
    request: Request,
    template: str,
    *,
    lang: str,
    title: str,
    member: StaffMember | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a staff page in ``lang``: never cached, the language cookie set when ``?lang=``
    chose. ``member`` (signed in) brings the menu of their role and the logout form."""
    _ = i18n.gettext(lang)
    controller = request.app.state.runtime.policy.controller
    html = i18n.render(
        template,
        lang,
        title=title,
        member=member,
        csrf=member.csrf if member else None,
        areas=[(href, _(label)) for href, label in AREAS.get(member.role, ())] if member else [],
        role_name=_(ROLE_NAMES.get(member.role, member.role)) if member else "",
        here=request.url.path if request.method == "GET" else HOME,
        query=_query_without_lang(request) if request.method == "GET" else "",
        company=controller.get("name", ""),
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=NO_STORE)
    if request.query_params.get("lang") in i18n.LANGUAGES:
        set_cookie(request, response, LANG_COOKIE, lang, max_age=365 * 86400)
    return response


def _query_without_lang(request: Request) -> str:
    """The page's own query (filters) for the language links, so switching keeps them."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return urlencode(kept)


def error_page(request: Request, exc: VaultError) -> Response:
    if isinstance(exc, StaffSessionRequired) and request.method in _SAFE:
        response: Response = RedirectResponse(HOME, status_code=303, headers=NO_STORE)
        if SESSION_COOKIE in request.cookies:
            response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return response
    lang = language(request)
    _ = i18n.gettext(lang)
    texts: dict[str, tuple[str, str]] = {
        "staff_session_required": (
            _("Please sign in again"),
            _("You are not signed in, or your session has ended."),
        ),
        "staff_role_refused": (
            _("Not for your role"),
            _("Your role may not use this page. The start page shows what you may do."),
        ),
        "csrf_refused": (
            _("The form could not be verified"),
            _("For your security nothing was changed. Go back, reload the page and try again."),
        ),
        "rate_limited": (
            _("Too many attempts"),
            _("Sign-ins from your connection are paused for a moment. Please wait a few minutes."),
        ),
    }
    title, text = texts.get(
        exc.code, (_("Something went wrong"), _("Your request could not be carried out."))
    )
    response = page(
        request, "staff_message.html", lang=lang, title=title, text=text, status_code=exc.status
    )
    response.headers.update(exc.headers() or {})
    if isinstance(exc, StaffSessionRequired):
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


class StaffPageRoute(APIRoute):
    """Domain errors of a staff page (its dependencies included) become :func:`error_page`;
    the request's transaction has rolled back by then, as on the JSON routes."""

    @staticmethod
    def render_error(request: Request, exc: VaultError) -> Response:
        return error_page(request, exc)


def authenticate(
    request: Request, session: Session, runtime: Runtime, roles: tuple[str, ...]
) -> StaffMember:
    """The live session's member if their role is one of ``roles`` (all roles when empty).
    For routes that manage their own transactions (the audit verification)."""
    token = request.cookies.get(SESSION_COOKIE) or ""
    _row, account = sessions.open_session(session=session, settings=runtime.settings, token=token)
    member = StaffMember(
        account.id,
        account.name,
        account.role,
        account.store,
        token,
        sessions.csrf_token(token),
        request.state.request_id,
    )
    if roles and member.role not in roles:
        raise StaffRoleRefused()
    return member


async def _posted_csrf(request: Request) -> str:
    if request.method in _SAFE:
        return ""
    form = await request.form()  # parsed once: FastAPI's Form() parameters read the same
    value = form.get("csrf_token")
    return value if isinstance(value, str) else ""


def require_role(*roles: str) -> Callable[..., Any]:
    """A dependency: the signed-in :class:`StaffMember` whose role is one of ``roles`` (no
    roles: any role). No live session: a GET is sent to sign in (303), anything else 403; the
    wrong role: 403; a form without the session's CSRF token: 403."""
    wanted = tuple(str(r) for r in roles)

    def dependency(
        request: Request,
        session: SessionDep,
        runtime: RuntimeDep,
        csrf_token: Annotated[str, Depends(_posted_csrf)],
    ) -> StaffMember:
        member = authenticate(request, session, runtime, wanted)
        if request.method not in _SAFE:
            sessions.check_csrf(member.token, csrf_token)
        return member

    dependency.__name__ = f"require_role_{'_'.join(wanted) or 'any'}"
    return dependency


AnyStaff = Annotated[StaffMember, Depends(require_role())]
Auditor = Annotated[StaffMember, Depends(require_role(Role.AUDITOR))]
