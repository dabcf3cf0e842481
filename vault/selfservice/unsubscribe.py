"""One-click unsubscribe (RFC 8058): the ``unsubscribe_url`` of the audience export.

``GET /unsubscribe/{token}`` shows what the link is for and a button; it changes nothing (link
scanners and previews fetch URLs). ``POST /unsubscribe/{token}`` with the form field
``List-Unsubscribe=One-Click`` (what mail clients send for ``List-Unsubscribe-Post``, and what
the page's button sends) withdraws the consent and answers 200. The token is the capability:
no cookie, no CSRF token (mail clients post without either; a forged request cannot name a
token it does not have). A POST without the field changes nothing (422 ``one_click_required``).

The token is checked first, without the database (:mod:`vault.crypto.unsubscribe`): a forged
or altered one is a 404 before any row is read and before the body is parsed. A customer
erased since is 410. A consent already withdrawn or refused is 200 again with no second event.

The withdrawal is an ordinary consent statement through :func:`vault.consent.service.record_event`
(ledger event, receipt, audit event, ``consent.withdrawn`` webhook): channel ``email``, method
``one_click_unsubscribe``, ledger actor ``customer`` (who spoke), recorded and audited as
``one_click:<customer id>`` (the door: the customer's mailbox, not a signed-in session), with
evidence of the page language, the user agent and the truncated IP of whoever posted (often the
mail provider).

The GET page offers, next to the button, a link to /me ("change what you receive") for a
purpose with contact channels, topics or frequencies, and no "fewer mails" form of its own:
the token may withdraw (the one change RFC 8058 asks for, and the safe direction), but a
preference is the customer's own statement (channel ``selfservice``, recorded by the customer
in a signed-in session), and a link that mail scanners, forwarded mails and shared inboxes
hold must not be able to shape what the customer receives. /me without a session mails the
customer a sign-in link to their stored address.

Answers are HTML pages when the request accepts ``text/html`` (a browser), else JSON (a mail
provider's POST, the API document's shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlmodel import Session
from starlette.formparsers import MultiPartException

from vault.access import store as access_store
from vault.consent import service as consent_service
from vault.crypto import unsubscribe as tokens
from vault.db import reader, transaction, utcnow
from vault.errors import CustomerErased, CustomerNotFound, PayloadTooLarge, VaultError
from vault.errors import responses as error_responses
from vault.http import MAX_FORM_FIELDS, NO_STORE, TooManyFields
from vault.policy import Policy, Purpose
from vault.provenance import Caller
from vault.runtime import Runtime
from vault.selfservice import actions, i18n
from vault.selfservice.errors import OneClickRequired, UnsubscribeLinkInvalid
from vault.selfservice.pages import PageRoute, error_page, language, translator
from vault.selfservice.schemas import UnsubscribePublic

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
METHOD = "one_click_unsubscribe"
CHANNEL = "email"
ACTOR_TYPE = "one_click"
_DONE = ("withdrawn", "refused")  # the deciding statement already says no


# --- what the link does (no HTTP) ------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    customer_id: UUID
    purpose: Purpose


def open_link(*, runtime: Runtime, token: str) -> Link:
    """The customer and purpose of a token this vault made (no database), else 404."""
    try:
        customer_id, purpose_id = tokens.for_index_key(runtime.envelope.keys.index_key).open(token)
    except tokens.InvalidUnsubscribeToken:
        raise UnsubscribeLinkInvalid() from None
    purpose = runtime.policy.purposes.get(purpose_id)
    if purpose is None or not purpose.needs_consent:  # gone from the policy since
        raise UnsubscribeLinkInvalid()
    return Link(customer_id, purpose)


def is_unsubscribed(*, engine: Any, link: Link) -> bool:
    """Whether the consent is already withdrawn or refused, in a read-only transaction (no
    write lock, nothing written). Unknown customer: 404; erased: 410."""
    with transaction(reader(engine)) as session:
        conn = session.connection()
        row = access_store.customer_for_purpose(conn, link.customer_id, link.purpose.id)
    if row is None:
        raise UnsubscribeLinkInvalid()
    if row.status == "erased":
        raise CustomerErased()
    return row.state is not None and row.state.status in _DONE


def one_click_caller(customer_id: UUID, request_id: str | None) -> Caller:
    return Caller(f"{ACTOR_TYPE}:{customer_id}", request_id)


def withdraw(
    *,
    session: Session,
    policy: Policy,
    runtime: Runtime,
    link: Link,
    language: str,
    evidence: dict[str, Any],
    request_id: str | None,
) -> bool:
    """Withdraw the consent (channel email, method one_click_unsubscribe); False, and nothing
    written, if it already is withdrawn or refused. Erased: 410."""
    try:
        state = consent_service.lock_customer_state(session, link.customer_id, link.purpose.id)
    except CustomerNotFound:
        raise UnsubscribeLinkInvalid() from None
    if state is not None and state.status in _DONE:
        return False
    consent_service.record_event(
        session=session,
        policy=policy,
        signer=runtime.signer,
        settings=runtime.settings,
        customer_id=link.customer_id,
        purpose=link.purpose.id,
        status="withdrawn",
        channel=CHANNEL,
        method=METHOD,
        actor="customer",
        by=one_click_caller(link.customer_id, request_id),
        language=language,
        evidence=evidence,
        now=utcnow(),
    )
    return True


# --- HTTP ------------------------------------------------------------------------------------


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _render(
    request: Request, token: str, lang: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    controller = request.app.state.runtime.policy.controller
    html = i18n.render(
        "unsubscribe.html",
        lang,
        here=f"/unsubscribe/{token}",
        action=f"/unsubscribe/{token}?lang={lang}",
        csrf=None,
        company=controller.get("name", ""),
        address=controller.get("address", ""),
        policy_url=controller.get("policy_url", ""),
        one_click_field=ONE_CLICK_FIELD,
        one_click_value=ONE_CLICK_VALUE,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=NO_STORE)


def _error_texts(code: str, _: Any) -> tuple[str, str, str] | None:
    return {
        "unsubscribe_link_invalid": (
            _("This link is not valid"),
            _("Please use the complete link from your e-mail."),
            _(
                "If you no longer want our e-mails, you can also withdraw your consent in our "
                "app or web shop."
            ),
        ),
        "one_click_required": (
            _("Nothing was changed"),
            _("Please press the button on the page to unsubscribe."),
            "",
        ),
        "customer_erased": (
            _("Your data has been erased"),
            _("There is no longer any customer profile for this link."),
            _("You will not receive any more e-mails from us."),
        ),
    }.get(code)


class UnsubscribeRoute(PageRoute):
    """Errors as a page for browsers, as ``{"error","detail"}`` for everyone else."""

    @staticmethod
    def render_error(request: Request, exc: VaultError) -> Response:
        if not _wants_html(request):
            return JSONResponse(exc.body(), status_code=exc.status, headers=NO_STORE)
        lang = language(request)
        texts = _error_texts(exc.code, translator(lang))
        if texts is None:
            return error_page(request, exc)
        title, text, next_step = texts
        token = request.path_params.get("token", "")
        return _render(
            request,
            token,
            lang,
            status_code=exc.status,
            title=title,
            text=text,
            next_step=next_step,
            done=True,
        )


router = APIRouter(route_class=UnsubscribeRoute, tags=["selfservice"])


@router.get("/unsubscribe/{token}", include_in_schema=False)
async def unsubscribe_page(token: str, request: Request) -> Response:
    """The page behind an unsubscribe link: what it is for, and the button. Changes nothing."""
    runtime: Runtime = request.app.state.runtime
    link = open_link(runtime=runtime, token=token)
    done = await runtime.run_db(is_unsubscribed, engine=runtime.engine, link=link)
    lang = language(request)
    _ = translator(lang)
    title = link.purpose.title.get(lang)
    if done:
        return _render(
            request,
            token,
            lang,
            title=_("You are unsubscribed"),
            text=_("You no longer receive e-mails for “%(purpose)s”.") % {"purpose": title},
            next_step="",
            done=True,
        )
    return _render(
        request,
        token,
        lang,
        title=_("Unsubscribe"),
        text=_("Do you no longer want to receive e-mails for “%(purpose)s”?") % {"purpose": title},
        next_step=_("Nothing changes until you press the button."),
        description=link.purpose.description.get(lang),
        done=False,
        fewer=bool(link.purpose.contact_channels),
        me_url=f"/me?lang={lang}",
    )


@router.post(
    "/unsubscribe/{token}",
    operation_id="one_click_unsubscribe",
    response_model=UnsubscribePublic,
    responses={
        200: {
            "content": {"text/html": {}},
            "description": "withdrawn now, or already: a page for browsers, else JSON",
        },
        **error_responses(
            UnsubscribeLinkInvalid,
            CustomerErased,
            OneClickRequired,
            PayloadTooLarge,  # first, as on every route with a body; then the form's own 413
            TooManyFields,
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {ONE_CLICK_FIELD: {"type": "string", "enum": ["One-Click"]}},
                        "required": [ONE_CLICK_FIELD],
                    }
                }
            },
        }
    },
)
async def one_click_unsubscribe(token: str, request: Request) -> Response:
    """RFC 8058 one-click unsubscribe: withdraw the consent this link is for.

    The token in the path is the credential (no cookie, no bearer token); the form body must
    be ``List-Unsubscribe=One-Click``. Idempotent: a consent already withdrawn is 200 again."""
    runtime: Runtime = request.app.state.runtime
    link = open_link(runtime=runtime, token=token)  # before the body is read
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    except MultiPartException as exc:
        if str(exc).startswith("Too many"):
            raise TooManyFields() from None
        raise OneClickRequired() from None
    except (ValueError, UnicodeDecodeError):
        raise OneClickRequired() from None
    if form.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
        raise OneClickRequired()
    lang = language(request)
    evidence = actions.page_evidence(
        user_agent=request.headers.get("user-agent"),
        client_ip=request.client.host if request.client else None,
        language=lang,
        gpc=False,
    )
    evidence.pop("gpc", None)  # a browser signal of the page, not of a mail client's POST
    await runtime.transaction(
        withdraw,
        policy=runtime.policy,
        runtime=runtime,
        link=link,
        language=lang,
        evidence=evidence,
        request_id=request.state.request_id,
    )
    if not _wants_html(request):
        return JSONResponse({"status": "unsubscribed"}, headers=NO_STORE)
    _ = translator(lang)
    return _render(
        request,
        token,
        lang,
        title=_("You are unsubscribed"),
        text=_("You no longer receive e-mails for “%(purpose)s”.")
        % {"purpose": link.purpose.title.get(lang)},
        next_step=_(
            "If you change your mind, you can give your consent again in our app or web shop."
        ),
        done=True,
    )
