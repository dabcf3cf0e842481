"""The staff console's door (HTML, under /staff): sign-in, start page, logout, and the one
place where the role areas' routers are included.

Sign-in: name, password and TOTP code (:func:`vault.staff.accounts.sign_in`), on a form
protected by a pre-sign-in CSRF cookie. Every failure is charged first to the client
address's and the name's failure budgets (``VAULT_RATE_LIMIT_STAFF_LOGIN_IP`` / ``_NAME``),
refunded on success; every refusal answers the same page (401), whatever the reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from vault.db import SessionDep
from vault.http import NO_STORE
from vault.ratelimit import client_address
from vault.runtime import RuntimeDep
from vault.staff import accounts, sessions
from vault.staff.audit_pages import router as audit_router
from vault.staff.counter_routes import router as counter_router
from vault.staff.errors import StaffSessionRequired
from vault.staff.i18n import gettext
from vault.staff.office_routes import router as office_router
from vault.staff.pages import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    AnyStaff,
    LangDep,
    StaffMember,
    StaffPageRoute,
    authenticate,
    page,
    set_cookie,
)

router = APIRouter(route_class=StaffPageRoute, include_in_schema=False)

# The role areas: each brings an APIRouter(route_class=StaffPageRoute, include_in_schema=False)
# whose routes take their member from pages.require_role(...). Add yours here.
AREA_ROUTERS: list[APIRouter] = [audit_router, counter_router, office_router]


def _login_form(
    request: Request, lang: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or ""
    _ = gettext(lang)
    fresh = not nonce or len(nonce) > sessions.MAX_TOKEN
    if fresh:
        nonce = sessions.new_login_nonce()
    response = page(
        request,
        "staff_login.html",
        lang=lang,
        title=_("Sign in to the staff console"),
        login_csrf=sessions.login_csrf(nonce),
        error=error,
        status_code=status_code,
    )
    if fresh:
        set_cookie(request, response, LOGIN_COOKIE, nonce)
    return response


@router.get("/staff", operation_id="staff_home")
def home(request: Request, session: SessionDep, runtime: RuntimeDep, lang: LangDep):
    """The start page (what the role may do), or the sign-in form without a live session."""
    try:
        member: StaffMember = authenticate(request, session, runtime, ())
    except StaffSessionRequired:
        response = _login_form(request, lang)
        if SESSION_COOKIE in request.cookies:
            response.delete_cookie(SESSION_COOKIE, path="/staff")
        return response
    _ = gettext(lang)
    return page(
        request,
        "staff_home.html",
        lang=lang,
        title=_("Staff console"),
        member=member,
    )


@router.post("/staff/login", operation_id="staff_login")
def login(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    lang: LangDep,
    name: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=accounts.MAX_PASSWORD)] = "",
    code: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
):
    sessions.check_login_csrf(request.cookies.get(LOGIN_COOKIE), csrf_token)
    limiter = runtime.limiter
    by_ip = limiter.charge_first("staff_login_ip", client_address(request))
    by_name = limiter.charge_first("staff_login_name", accounts.normalise_name(name)[:64])
    outcome = accounts.sign_in(
        session=session,
        envelope=runtime.envelope,
        settings=runtime.settings,
        name=name,
        password=password,
        code=code,
        request_id=request.state.request_id,
    )
    if outcome.account is None:
        _ = gettext(lang)
        return _login_form(
            request,
            lang,
            error=_(
                "Name, password or code are not right, or the account may not sign in now. "
                "After several failed attempts the account is locked for a while."
            ),
            status_code=401,
        )
    limiter.refund(by_ip)
    limiter.refund(by_name)
    started = sessions.start_session(
        session=session, settings=runtime.settings, account=outcome.account
    )
    response = RedirectResponse("/staff", status_code=303, headers=NO_STORE)
    set_cookie(request, response, SESSION_COOKIE, started.token)
    response.delete_cookie(LOGIN_COOKIE, path="/staff")
    return response


@router.post("/staff/logout", operation_id="staff_logout")
def logout(request: Request, session: SessionDep, member: AnyStaff, lang: LangDep):
    sessions.end_session(session=session, token=member.token, by=member.caller)
    _ = gettext(lang)
    response = page(
        request,
        "staff_message.html",
        lang=lang,
        title=_("You have signed out"),
        text=_("Your session has ended."),
        next_link=("/staff", _("Sign in again")),
    )
    response.delete_cookie(SESSION_COOKIE, path="/staff")
    return response


for _area in AREA_ROUTERS:
    router.include_router(_area)
