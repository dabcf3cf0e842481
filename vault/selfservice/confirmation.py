"""The double opt-in confirmation page: ``GET /confirm/{token}`` shows, the button confirms.

The link of the ``doi_confirmation`` mail (:mod:`vault.consent.doi`) opens this page. Opening
it (as mail scanners and link previews do) changes nothing: the GET only shows what is being
confirmed (the purpose, what it means, the controller, until when the link is valid) and a form
with one button. Pressing it POSTs to the same address; the token in the address is the
capability, so no session is needed. A POST whose browser says it came from another site
(``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an ``Origin`` that is not the vault's)
is refused. The confirmation is recorded by :func:`vault.consent.service.confirm` with the
customer as actor and evidence ``mail_id``, truncated ``ip``, ``user_agent``, ``language``.

An unknown, used, expired or superseded link gets a friendly page with its 4xx status (404,
409, 410, 409). Failed look-ups count toward the per-address limit of the magic links.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from vault.consent import service as consent_service
from vault.consent.errors import ConfirmationTokenNotFound
from vault.db import SessionDep
from vault.errors import VaultError
from vault.provenance import Caller
from vault.ratelimit import client_address
from vault.runtime import RuntimeDep
from vault.selfservice import actions, i18n
from vault.selfservice.errors import CsrfRefused
from vault.selfservice.pages import N_, LangDep, PageRoute, error_page, page, translator

TEXTS: dict[str, tuple[str, str, str]] = {
    "confirmation_token_not_found": (
        N_("This confirmation link is not valid"),
        N_("Please use the complete link from your e-mail."),
        N_("If you still want to give your consent, give it again: we will send a new link."),
    ),
    "confirmation_token_used": (
        N_("You have already confirmed this"),
        N_("This confirmation link has already been used; nothing more is needed."),
        N_("You can see and change your consents on your self-service page at any time."),
    ),
    "confirmation_token_expired": (
        N_("This confirmation link has expired"),
        N_("Confirmation links are valid for 7 days. Nothing was confirmed."),
        N_("If you still want to give your consent, give it again: we will send a new link."),
    ),
    "confirmation_superseded": (
        N_("This confirmation link is no longer valid"),
        N_("You have made a newer choice for this purpose since; that choice counts."),
        N_("You can see and change your consents on your self-service page at any time."),
    ),
}


class ConfirmationRoute(PageRoute):
    """The friendly pages of a confirmation link; other errors as on every page."""

    @staticmethod
    def render_error(request: Request, exc: VaultError) -> Response:
        texts = TEXTS.get(exc.code)
        if texts is None:
            return error_page(request, exc)
        lang = i18n.negotiate(
            request.query_params.get("lang"), None, request.headers.get("accept-language")
        )
        _ = translator(lang)
        title, text, next_step = (_(t) for t in texts)
        return page(
            request,
            "message.html",
            lang=lang,
            title=title,
            text=text,
            next_step=next_step,
            status_code=exc.status,
        )


router = APIRouter(route_class=ConfirmationRoute, include_in_schema=False)


def _pending(request: Request, session: SessionDep, runtime: RuntimeDep, token: str):
    address = client_address(request)
    runtime.limiter.check("login_failures_ip", address)
    try:
        return consent_service.pending_confirmation(
            session=session, policy=runtime.policy, token=token
        )
    except ConfirmationTokenNotFound:
        runtime.limiter.charge("login_failures_ip", address)
        raise


def _same_origin(request: Request, public_url: str) -> None:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfRefused()
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        ours = urlsplit(public_url)
        if origin.rstrip("/") != f"{ours.scheme}://{ours.netloc}":
            raise CsrfRefused()


@router.get("/confirm/{token}", operation_id="confirm_consent_page")
def show(token: str, request: Request, session: SessionDep, runtime: RuntimeDep, lang: LangDep):
    """What the link would confirm, and the button; confirms nothing."""
    pending = _pending(request, session, runtime, token)
    _ = translator(lang)
    return page(
        request,
        "confirm.html",
        lang=lang,
        title=_("Please confirm your consent"),
        purpose_title=pending.purpose.title.get(lang),
        purpose_description=pending.purpose.description.get(lang),
        expires_at=pending.expires_at,
        # the language cookie lives under /me: the button keeps the page's language itself
        action=f"/confirm/{token}?lang={lang}",
    )


@router.post("/confirm/{token}", operation_id="confirm_consent_press")
def press(
    token: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    lang: LangDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
):
    """The button: record the confirmation with its evidence."""
    _same_origin(request, runtime.settings.public_url)
    if confirm != "yes":
        raise CsrfRefused()
    pending = _pending(request, session, runtime, token)
    evidence = actions.page_evidence(
        user_agent=request.headers.get("user-agent"),
        client_ip=request.client.host if request.client else None,
        language=lang,
        gpc=False,
    )
    evidence.pop("gpc", None)
    consent_service.confirm(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        token=token,
        by=Caller(consent_service.customer_actor(pending.customer_id), request.state.request_id),
        evidence=evidence,
        on_page=True,
    )
    _ = translator(lang)
    return page(
        request,
        "message.html",
        lang=lang,
        title=_("Thank you: your consent is confirmed"),
        text=_("From now on your consent to “%(title)s” counts.")
        % {"title": pending.purpose.title.get(lang)},
        next_step=_("You can withdraw it at any time on your self-service page or in our app."),
    )
