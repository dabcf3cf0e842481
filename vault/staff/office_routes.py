"""The privacy office (role ``privacy_officer``): pages under ``/staff/office``.

Thin routes over :mod:`vault.staff.office` (queries) and the DSR services, which audit every
change with the member's ``Caller`` (``staff:<id>``). Every POST carries the session's CSRF
token (checked by :func:`vault.staff.pages.require_role`) and answers 303 to the page it came
from (``?done=<what>``), or that page again with the refusal in words and its status (422,
404, 409, 410) after rolling back. Form values are checked against the DSR codes here, before
any service runs, so a forged value is a 422 page, never a 500.

Erasure takes a second confirmation: the customer page links to a confirmation page (GET),
whose form (a ticked box) POSTs the erasure; a legal hold shows no erase button at all, and a
hold set in between is refused and audited by :func:`vault.dsr.erasure.erase`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.consent import dossier as consent_dossier
from vault.customers import service as customers_service
from vault.db import SessionDep, utcnow
from vault.dsr import erasure as dsr_erasure
from vault.dsr import requests as dsr_requests
from vault.dsr import rights as dsr_rights
from vault.dsr.notes import MAX_NOTE
from vault.dsr.schemas import (
    CompletionReason,
    ExtensionReason,
    LegalHoldReason,
    LegalHoldRelease,
    RejectionReason,
    RequestKind,
    RequestStatus,
    RestrictionReason,
)
from vault.errors import InvalidRequest, NotFound, VaultError
from vault.http import NO_STORE
from vault.runtime import Runtime, RuntimeDep
from vault.selfservice import dossier as dossier_page
from vault.staff import i18n, office, office_views
from vault.staff.accounts import Role
from vault.staff.pages import LangDep, StaffMember, StaffPageRoute, page, require_role

router = APIRouter(route_class=StaffPageRoute, include_in_schema=False)
Officer = Annotated[StaffMember, Depends(require_role(Role.PRIVACY_OFFICER))]
FormText = Annotated[str, Form(max_length=2000)]

HOME = "/staff/office"
REQUESTS = "/staff/office/requests"
_NOTE_BAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
QUEUE_FILTERS = ("open", "completed", "rejected", "all")


def N_(message: str) -> str:
    return message


# What a finished action says on the page it returns to (?done=...).
DONE = {
    "extended": N_("The deadline was extended."),
    "closed": N_("The request was closed."),
    "recorded": N_("The request was recorded; its deadline is running."),
    "restricted": N_("Processing is restricted: nothing is released to any purpose."),
    "restriction_lifted": N_("The restriction was lifted."),
    "objected": N_("The objection was recorded."),
    "objection_withdrawn": N_("The objection was withdrawn."),
    "hold_set": N_("The legal hold was set: erasure is refused until it is cleared."),
    "hold_cleared": N_("The legal hold was cleared."),
    "erased": N_("The customer was erased. The signed erasure certificate is kept."),
}
# What a refusal says (by error code); anything else: the generic text and the code.
REFUSED = {
    "extension_reason_required": N_("An extension needs a reason (Art. 12(3))."),
    "extension_too_long": N_("A deadline can be extended by at most two months in total."),
    "rejection_reason_required": N_("A rejection needs a reason (Art. 12(4))."),
    "invalid_close_reason": N_("This reason does not fit how the request is closed."),
    "dsr_request_closed": N_("This request is already closed."),
    "customer_erased": N_("This customer has been erased: only codes are kept, no notes."),
    "customer_not_found": N_("No customer matches."),
    "invalid_choice": N_("Please choose one of the offered options."),
    "invalid_note": N_("The note is too long or holds control characters."),
    "invalid_date": N_("Please give the date the request was received (not in the future)."),
    "erasure_not_confirmed": N_("Nothing was erased: please tick the box to confirm."),
    "invalid_objection_scope": N_(
        "An objection names direct marketing or a purpose based on legitimate interest."
    ),
    "legal_hold": N_("Erasure refused: the customer's data is under a legal hold."),
}


# --- helpers ------------------------------------------------------------------------------


def _gettext(lang: str) -> Callable[[str], str]:
    return i18n.gettext(lang)


def _choice(value: str, allowed: Any, *, optional: bool = False) -> str | None:
    value = value.strip()
    if optional and not value:
        return None
    if value not in {str(a) for a in allowed}:
        raise InvalidRequest("Choose one of the offered options.", code="invalid_choice")
    return value


def _note(value: str) -> str | None:
    if len(value) > MAX_NOTE or _NOTE_BAD.search(value):
        raise InvalidRequest("The note is not valid.", code="invalid_note")
    return value.strip() or None


def _done(path: str, what: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={what}", status_code=303, headers=NO_STORE)


def _attempt(session: Session, action: Callable[[], Any]) -> VaultError | None:
    """Run one change; a refusal (not an audited one: that must reach the transaction) rolls
    it back and is returned, so the page can say it."""
    try:
        action()
    except VaultError as exc:
        if getattr(exc, "audit", None) is not None:
            raise
        session.rollback()
        return exc
    return None


def _messages(lang: str, done: str | None, error: VaultError | None) -> dict[str, str | None]:
    _ = _gettext(lang)
    refused = None
    if error is not None:
        refused = (
            _(REFUSED[error.code])
            if error.code in REFUSED
            else (_("Your request could not be carried out.") + f" ({error.code})")
        )
    return {"done": _(DONE[done]) if done in DONE else None, "refused": refused}


def _viewed(session: Session, member: StaffMember, customer_id: UUID, what: str) -> None:
    """A customer's page was shown to the member (it opens the customer's sealed notes)."""
    audit_record.record(
        session=session,
        by=member.caller,
        action=AuditAction.STAFF_CUSTOMER_VIEWED,
        customer_id=customer_id,
        details={"page": what},
    )


def _common(lang: str) -> dict[str, Any]:
    _ = _gettext(lang)
    return {"label": office_views.labeller(_), "v": office_views}


# --- the start page and the customer lookup ---------------------------------------------------


def _home(
    request: Request,
    session: Session,
    member: StaffMember,
    lang: str,
    *,
    error: VaultError | None = None,
) -> Response:
    now = utcnow()
    queue = office.request_queue(session=session, now=now)
    return page(
        request,
        "office_home.html",
        lang=lang,
        title=_gettext(lang)("Privacy office"),
        member=member,
        open_count=len(queue),
        overdue=[q for q in queue if q.overdue],
        due_soon=[q for q in queue if not q.overdue and q.days < 7],
        status_code=error.status if error else 200,
        **_messages(lang, None, error),
        **_common(lang),
    )


@router.get("/staff/office", operation_id="staff_office_home")
def office_home(request: Request, session: SessionDep, member: Officer, lang: LangDep):
    """The privacy office's start: what is overdue or due this week, the customer lookup."""
    return _home(request, session, member, lang)


@router.post("/staff/office/lookup", operation_id="staff_office_lookup")
def office_lookup(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    query: FormText = "",
):
    """Find a customer by id or e-mail address (blind index; audited as a lookup)."""
    text = query.strip()
    found: list[UUID] = []

    def find() -> None:
        try:
            cid = UUID(text)
        except ValueError:
            cid = customers_service.lookup(
                session=session,
                envelope=runtime.envelope,
                policy=runtime.policy,
                attribute="email",
                value=text,
                by=member.caller,
            )
        else:
            customers_service.get_customer(session, cid, allow_erased=True)
        found.append(cid)

    error = _attempt(session, find) if text else NotFound(code="customer_not_found")
    if error is not None:
        if error.code in ("invalid_attribute_value", "invalid_request"):
            error = NotFound(code="customer_not_found")
        return _home(request, session, member, lang, error=error)
    return RedirectResponse(f"/staff/office/customers/{found[0]}", 303, headers=NO_STORE)


# --- the request queue and one request --------------------------------------------------------


@router.get("/staff/office/requests", operation_id="staff_office_requests")
def office_requests(
    request: Request,
    session: SessionDep,
    member: Officer,
    lang: LangDep,
    status: Annotated[str, Query(max_length=16)] = "open",
):
    """The data-subject request queue by deadline, overdue requests first and marked."""
    if status not in QUEUE_FILTERS:
        status = "open"
    queue = office.request_queue(
        session=session, now=utcnow(), status=None if status == "all" else status
    )
    return page(
        request,
        "office_requests.html",
        lang=lang,
        title=_gettext(lang)("Data-subject requests"),
        member=member,
        queue=queue,
        status=status,
        filters=QUEUE_FILTERS,
        **_common(lang),
    )


def _request_page(
    request: Request,
    session: Session,
    runtime: Runtime,
    member: StaffMember,
    lang: str,
    request_id: UUID,
    *,
    done: str | None = None,
    error: VaultError | None = None,
) -> Response:
    view = office.request_detail(
        session=session, envelope=runtime.envelope, request_uuid=request_id, now=utcnow()
    )
    _ = _gettext(lang)
    return page(
        request,
        "office_request.html",
        lang=lang,
        title=_("Request: %(kind)s")
        % {"kind": _(office_views.KIND.get(view["kind"], view["kind"]))},
        member=member,
        r=view,
        extension_reasons=list(ExtensionReason),
        rejection_reasons=list(RejectionReason),
        completion_reasons=list(CompletionReason),
        max_months=dsr_requests.MAX_EXTENSION_MONTHS,
        max_note=MAX_NOTE,
        status_code=error.status if error else 200,
        **_messages(lang, done, error),
        **_common(lang),
    )


@router.get("/staff/office/requests/{request_id}", operation_id="staff_office_request")
def office_request(
    request: Request,
    request_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    done: Annotated[str | None, Query(max_length=32)] = None,
):
    """One request: deadline, extension and closing forms."""
    return _request_page(request, session, runtime, member, lang, request_id, done=done)


@router.post("/staff/office/requests/{request_id}/extend", operation_id="staff_office_extend")
def office_extend(
    request: Request,
    request_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    months: FormText = "",
    reason: FormText = "",
    note: FormText = "",
):
    """Extend the deadline (Art. 12(3)) by 1 or 2 months, with a reason and an optional note."""

    def extend() -> None:
        dsr_requests.extend_request(
            session=session,
            envelope=runtime.envelope,
            request_uuid=request_id,
            months=int(_choice(months, ("1", "2")) or 0),
            reason=_choice(reason, ExtensionReason, optional=True),
            note=_note(note),
            by=member.caller,
        )

    error = _attempt(session, extend)
    if error is not None:
        return _request_page(request, session, runtime, member, lang, request_id, error=error)
    return _done(f"{REQUESTS}/{request_id}", "extended")


@router.post("/staff/office/requests/{request_id}/close", operation_id="staff_office_close")
def office_close(
    request: Request,
    request_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    status: FormText = "",
    reason: FormText = "",
    note: FormText = "",
):
    """Close a request as completed (optional reason) or rejected (reason required)."""

    def close() -> None:
        outcome = _choice(status, (RequestStatus.COMPLETED, RequestStatus.REJECTED))
        codes = RejectionReason if outcome == RequestStatus.REJECTED else CompletionReason
        dsr_requests.close_request(
            session=session,
            envelope=runtime.envelope,
            request_uuid=request_id,
            status=outcome,
            reason=_choice(reason, codes, optional=True),
            note=_note(note),
            by=member.caller,
        )

    error = _attempt(session, close)
    if error is not None:
        return _request_page(request, session, runtime, member, lang, request_id, error=error)
    return _done(f"{REQUESTS}/{request_id}", "closed")


# --- one customer: rights, requests, erasure, dossier --------------------------------------------


def _customer_page(
    request: Request,
    session: Session,
    runtime: Runtime,
    member: StaffMember,
    lang: str,
    customer_id: UUID,
    *,
    done: str | None = None,
    error: VaultError | None = None,
) -> Response:
    view = office.customer_view(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=customer_id,
        now=utcnow(),
    )
    return page(
        request,
        "office_customer.html",
        lang=lang,
        title=_gettext(lang)("Customer"),
        member=member,
        c=view,
        kinds=list(RequestKind),
        restriction_reasons=list(RestrictionReason),
        hold_reasons=list(LegalHoldReason),
        hold_releases=list(LegalHoldRelease),
        purposes=runtime.policy.purposes,
        max_note=MAX_NOTE,
        today=utcnow().date().isoformat(),
        status_code=error.status if error else 200,
        **_messages(lang, done, error),
        **_common(lang),
    )


def _customer_action(
    request: Request,
    session: Session,
    runtime: Runtime,
    member: StaffMember,
    lang: str,
    customer_id: UUID,
    done: str,
    action: Callable[[], Any],
) -> Response:
    error = _attempt(session, action)
    if error is not None:
        return _customer_page(request, session, runtime, member, lang, customer_id, error=error)
    return _done(f"/staff/office/customers/{customer_id}", done)


@router.get("/staff/office/customers/{customer_id}", operation_id="staff_office_customer")
def office_customer(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    done: Annotated[str | None, Query(max_length=32)] = None,
):
    """A customer's rights (status, objections, restriction, legal hold) and requests."""
    response = _customer_page(request, session, runtime, member, lang, customer_id, done=done)
    _viewed(session, member, customer_id, "customer")
    return response


@router.post(
    "/staff/office/customers/{customer_id}/requests", operation_id="staff_office_record_request"
)
def office_record_request(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    kind: FormText = "",
    received: FormText = "",
):
    """Record a request as received (its one-month deadline starts at the receipt)."""

    def record() -> None:
        now = utcnow()
        chosen = _choice(kind, RequestKind)
        received_at = now
        if received.strip():
            try:
                day = date.fromisoformat(received.strip())
            except ValueError:
                raise InvalidRequest("Not a date.", code="invalid_date") from None
            if day > now.date():
                raise InvalidRequest("In the future.", code="invalid_date")
            if day < now.date():
                received_at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        dsr_requests.create_request(
            session=session,
            customer_id=customer_id,
            kind=chosen,
            received_at=received_at,
            by=member.caller,
            now=now,
        )

    return _customer_action(
        request, session, runtime, member, lang, customer_id, "recorded", record
    )


@router.post(
    "/staff/office/customers/{customer_id}/restriction", operation_id="staff_office_restrict"
)
def office_restrict(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    reason: FormText = "",
    note: FormText = "",
):
    """Restrict processing (Art. 18) with its ground and an optional note."""

    def restrict() -> None:
        dsr_rights.restrict(
            session=session,
            customer_id=customer_id,
            envelope=runtime.envelope,
            reason=_choice(reason, RestrictionReason),
            note=_note(note),
            by=member.caller,
        )

    return _customer_action(
        request, session, runtime, member, lang, customer_id, "restricted", restrict
    )


@router.post(
    "/staff/office/customers/{customer_id}/restriction/lift",
    operation_id="staff_office_lift_restriction",
)
def office_lift_restriction(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
):
    """Lift the restriction (Art. 18(3): the data subject is told before)."""

    def lift() -> None:
        dsr_rights.lift_restriction(session=session, customer_id=customer_id, by=member.caller)

    return _customer_action(
        request, session, runtime, member, lang, customer_id, "restriction_lifted", lift
    )


@router.post("/staff/office/customers/{customer_id}/objection", operation_id="staff_office_object")
def office_object(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    scope: FormText = "",
):
    """Record an objection (Art. 21): direct marketing, or a legitimate-interest purpose."""

    def objection() -> None:
        dsr_rights.object_to(
            session=session,
            policy=runtime.policy,
            customer_id=customer_id,
            scope=_choice(scope, dsr_rights.objection_scopes(runtime.policy)),
            by=member.caller,
        )

    return _customer_action(
        request, session, runtime, member, lang, customer_id, "objected", objection
    )


@router.post(
    "/staff/office/customers/{customer_id}/objection/withdraw",
    operation_id="staff_office_withdraw_objection",
)
def office_withdraw_objection(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    scope: FormText = "",
):
    """The data subject withdraws an objection."""

    def withdraw() -> None:
        dsr_rights.withdraw_objection(
            session=session,
            policy=runtime.policy,
            customer_id=customer_id,
            scope=_choice(scope, dsr_rights.objection_scopes(runtime.policy)),
            by=member.caller,
        )

    return _customer_action(
        request, session, runtime, member, lang, customer_id, "objection_withdrawn", withdraw
    )


@router.post(
    "/staff/office/customers/{customer_id}/legal-hold", operation_id="staff_office_set_hold"
)
def office_set_hold(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    reason: FormText = "",
    note: FormText = "",
):
    """Set a legal hold (Art. 17(3)): erasure is refused until it is cleared."""

    def hold() -> None:
        dsr_rights.set_legal_hold(
            session=session,
            envelope=runtime.envelope,
            customer_id=customer_id,
            reason=_choice(reason, LegalHoldReason),
            note=_note(note),
            by=member.caller,
        )

    return _customer_action(request, session, runtime, member, lang, customer_id, "hold_set", hold)


@router.post(
    "/staff/office/customers/{customer_id}/legal-hold/clear",
    operation_id="staff_office_clear_hold",
)
def office_clear_hold(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    reason: FormText = "",
):
    """Clear the legal hold, saying why it no longer applies."""

    def clear() -> None:
        dsr_rights.clear_legal_hold(
            session=session,
            customer_id=customer_id,
            reason=_choice(reason, LegalHoldRelease),
            by=member.caller,
        )

    return _customer_action(
        request, session, runtime, member, lang, customer_id, "hold_cleared", clear
    )


def _erase_page(
    request: Request,
    session: Session,
    runtime: Runtime,
    member: StaffMember,
    lang: str,
    customer_id: UUID,
    *,
    error: VaultError | None = None,
) -> Response:
    view = office.customer_view(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=customer_id,
        now=utcnow(),
    )
    return page(
        request,
        "office_erase.html",
        lang=lang,
        title=_gettext(lang)("Erase this customer?"),
        member=member,
        c=view,
        status_code=error.status if error else 200,
        **_messages(lang, None, error),
        **_common(lang),
    )


@router.get(
    "/staff/office/customers/{customer_id}/erase", operation_id="staff_office_erase_confirm"
)
def office_erase_confirm(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
):
    """The second confirmation before an erasure: what goes, what stays."""
    response = _erase_page(request, session, runtime, member, lang, customer_id)
    _viewed(session, member, customer_id, "erase")
    return response


@router.post("/staff/office/customers/{customer_id}/erase", operation_id="staff_office_erase")
def office_erase(
    request: Request,
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    confirm: FormText = "",
):
    """Erase the customer (Art. 17, crypto-shredding) once the box is ticked. A legal hold
    refuses (409, audited)."""
    if confirm != "yes":
        error = InvalidRequest("Not confirmed.", code="erasure_not_confirmed")
        return _erase_page(request, session, runtime, member, lang, customer_id, error=error)
    customers_service.get_customer(session, customer_id)  # 404 / 410 before anything else
    dsr_erasure.erase(
        session=session,
        customer_id=customer_id,
        by=member.caller,
        notary=dsr_erasure.Notary.of(runtime),
    )
    return _done(f"/staff/office/customers/{customer_id}", "erased")


@router.get("/staff/office/customers/{customer_id}/dossier", operation_id="staff_office_dossier")
def office_dossier(
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
) -> Response:
    """The customer's consent dossier, printable (the same page the API serves as HTML)."""
    built = consent_dossier.build(
        session=session,
        policy=runtime.policy,
        customer_id=customer_id,
        issuer=runtime.settings.issuer,
        now=utcnow(),
    )
    _viewed(session, member, customer_id, "dossier")
    return HTMLResponse(dossier_page.render(built, lang), headers=NO_STORE)


# --- rates and delivery health ----------------------------------------------------------------


@router.get("/staff/office/rates", operation_id="staff_office_rates")
def office_rates(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    member: Officer,
    lang: LangDep,
    weeks: Annotated[int, Query(ge=1, le=office.MAX_WEEKS)] = office.DEFAULT_WEEKS,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
):
    """Consent rates per purpose, touchpoint and week, as SVG charts with their tables."""
    if purpose is not None and purpose not in runtime.policy.purposes:
        purpose = None
    now = utcnow()
    rates = office.consent_rates(
        session=session, policy=runtime.policy, now=now, weeks=weeks, purpose=purpose
    )
    _ = _gettext(lang)
    return page(
        request,
        "office_rates.html",
        lang=lang,
        title=_("Consent rates"),
        member=member,
        rates=rates,
        charts=office_views.rate_charts(rates, runtime.policy, lang, _),
        preference_charts=office_views.preference_charts(
            office.preference_rates(
                session=session, policy=runtime.policy, now=now, weeks=weeks, purpose=purpose
            ),
            runtime.policy,
            lang,
            _,
        ),
        purposes=[p for p in runtime.policy.purposes.values() if p.needs_consent],
        weeks=weeks,
        week_choices=(4, 12, 26, 52),
        **_common(lang),
    )


@router.get("/staff/office/health", operation_id="staff_office_health")
def office_health(request: Request, session: SessionDep, member: Officer, lang: LangDep):
    """Webhook and mail delivery: counts by state, the oldest waiting, the last failures."""
    return page(
        request,
        "office_health.html",
        lang=lang,
        title=_gettext(lang)("Delivery health"),
        member=member,
        health=office.delivery_health(session=session),
        **_common(lang),
    )
