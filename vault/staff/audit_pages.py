"""The auditors' pages (role ``auditor``): the audit log with the API's filters, the chain
verification, and CSV / NDJSON exports.

Reading goes through :mod:`vault.audit.query` and verifying through :mod:`vault.audit.verify`,
exactly as ``GET /v1/audit/events`` and ``GET /v1/audit/verify`` do, and each is recorded as
``audit.read`` with the auditor as actor (``staff:<id>``). An audit event holds ids, names,
outcomes and reason codes, never a customer's data values, so nothing here can show one.

Filters come from a plain GET form and are checked here (a bad value re-renders the page
with a message, 422), with the API's patterns. Times without a zone are read as the page's
time zone (Europe/Berlin), as ``<input type="datetime-local">`` sends them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import StreamingResponse

from vault.audit.actions import AuditAction
from vault.audit.errors import InvalidCursor
from vault.audit.query import (
    CSV,
    NDJSON,
    EventFilter,
    csv_chunks,
    iter_events,
    list_events,
    ndjson_lines,
)
from vault.audit.record import record
from vault.audit.verify import seal_and_verify
from vault.db import SessionDep, transaction
from vault.http import NO_STORE
from vault.runtime import RuntimeDep
from vault.selfservice.i18n import TIMEZONE
from vault.staff import sessions
from vault.staff.accounts import Role
from vault.staff.i18n import gettext
from vault.staff.pages import (
    N_,
    Auditor,
    LangDep,
    StaffMember,
    StaffPageRoute,
    authenticate,
    page,
)

router = APIRouter(route_class=StaffPageRoute, include_in_schema=False)

PAGE_SIZE = 100
LABELS = {
    "customer_id": N_("Customer id"),
    "actor": N_("Actor"),
    "purpose": N_("Purpose"),
    "action": N_("Action"),
    "outcome": N_("Outcome"),
    "since": N_("From"),
    "until": N_("Until (before)"),
}
OUTCOMES = ("success", "allowed", "denied", "error")
_ACTOR = re.compile(r"[a-z][a-z_]{1,15}(:[A-Za-z0-9._:\-]{1,200})?")
_PURPOSE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ACTION = re.compile(r"[a-z][a-z0-9_.]{0,62}(\.\*)?")


class FilterForm:
    """The page's filter fields as typed, and the :class:`EventFilter` they mean (or the names
    of the fields that are not valid)."""

    FIELDS = ("customer_id", "actor", "purpose", "action", "outcome", "since", "until")

    def __init__(self, values: dict[str, str]):
        self.values = {k: (values.get(k) or "").strip()[:220] for k in self.FIELDS}
        self.invalid: list[str] = []
        v = self.values
        self.filter = EventFilter(
            customer_id=self._uuid(v["customer_id"]),
            actor=self._match("actor", _ACTOR),
            purpose=self._match("purpose", _PURPOSE),
            action=self._match("action", _ACTION),
            outcome=self._choice("outcome", OUTCOMES),
            since=self._time("since"),
            until=self._time("until"),
        )

    def _uuid(self, text: str) -> UUID | None:
        if not text:
            return None
        try:
            return UUID(text)
        except ValueError:
            self.invalid.append("customer_id")
            return None

    def _match(self, name: str, pattern: re.Pattern[str]) -> str | None:
        text = self.values[name]
        if text and not pattern.fullmatch(text):
            self.invalid.append(name)
            return None
        return text or None

    def _choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        text = self.values[name]
        if text and text not in allowed:
            self.invalid.append(name)
            return None
        return text or None

    def _time(self, name: str) -> datetime | None:
        text = self.values[name]
        if not text:
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            self.invalid.append(name)
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(TIMEZONE))
        if not (1970 <= value.year <= 9999):
            self.invalid.append(name)
            return None
        return value

    def query(self, **extra: str) -> str:
        return urlencode({**{k: v for k, v in self.values.items() if v}, **extra})


def _filters(request: Request) -> FilterForm:
    return FilterForm({k: request.query_params.get(k, "") for k in FilterForm.FIELDS})


FiltersDep = Annotated[FilterForm, Depends(_filters)]


def _read(session: Any, member: StaffMember, form: FilterForm, fmt: str) -> None:
    record(
        session=session,
        by=member.caller,
        action=AuditAction.AUDIT_READ,
        customer_id=form.filter.customer_id,
        purpose=form.filter.purpose,
        details={"format": fmt, "filters": form.filter.used()},
    )


@router.get("/staff/audit", operation_id="staff_audit_log")
def audit_log(
    request: Request,
    session: SessionDep,
    member: Auditor,
    lang: LangDep,
    form: FiltersDep,
    cursor: str = "",
):
    """The audit log in insertion order, 100 events a page, with the API's filters."""
    _ = gettext(lang)
    events: list[dict[str, Any]] = []
    next_cursor = None
    error = None
    status = 200
    if form.invalid:
        fields = ", ".join(_(LABELS[name]) for name in form.invalid)
        error = _("Please check these filters: %(fields)s.") % {"fields": fields}
        status = 422
    else:
        try:
            events, next_cursor = list_events(
                session=session, filters=form.filter, cursor=cursor[:200] or None, limit=PAGE_SIZE
            )
        except InvalidCursor:
            error = _("This page of the log no longer exists. Start again from the first page.")
            status = 422
        else:
            _read(session, member, form, "html")
    return page(
        request,
        "staff_audit.html",
        lang=lang,
        title=_("Audit log"),
        member=member,
        form=form.values,
        outcomes=OUTCOMES,
        events=events,
        error=error,
        next_query=form.query(cursor=next_cursor) if next_cursor else None,
        export_query=form.query(),
        status_code=status,
    )


def _export(
    request: Request, session: Any, member: StaffMember, form: FilterForm, media: str
) -> StreamingResponse:
    _read(session, member, form, media.split("/")[-1])
    # streams after the request's transaction (and its audit.read event) committed
    events = iter_events(engine=request.app.state.runtime.engine, filters=form.filter)
    name = "audit-events.csv" if media == CSV else "audit-events.ndjson"
    body = csv_chunks(events) if media == CSV else ndjson_lines(events)
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8" if media == CSV else NDJSON,
        headers={**NO_STORE, "content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/staff/audit/export.csv", operation_id="staff_audit_export_csv")
def export_csv(
    request: Request, session: SessionDep, member: Auditor, lang: LangDep, form: FiltersDep
):
    if form.invalid:
        return audit_log(request, session, member, lang, form)
    return _export(request, session, member, form, CSV)


@router.get("/staff/audit/export.ndjson", operation_id="staff_audit_export_ndjson")
def export_ndjson(
    request: Request, session: SessionDep, member: Auditor, lang: LangDep, form: FiltersDep
):
    if form.invalid:
        return audit_log(request, session, member, lang, form)
    return _export(request, session, member, form, NDJSON)


@router.post("/staff/audit/verify", operation_id="staff_audit_verify")
def verify(
    request: Request,
    runtime: RuntimeDep,
    lang: LangDep,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
):
    """Chain pending events, then recompute the whole chain and check every checkpoint."""
    # The session check and the audit.read event commit in a transaction of their own first:
    # sealing and verifying run in theirs, and on SQLite no write lock may be held meanwhile.
    with transaction(runtime.engine) as session:
        member = authenticate(request, session, runtime, (Role.AUDITOR,))
        sessions.check_csrf(member.token, csrf_token)
        record(
            session=session,
            by=member.caller,
            action=AuditAction.AUDIT_READ,
            details={"format": "verify"},
        )
    result = seal_and_verify(engine=runtime.engine, keys=runtime.keys)
    _ = gettext(lang)
    return page(
        request,
        "staff_audit_verify.html",
        lang=lang,
        title=_("Verification of the audit log"),
        member=member,
        result=result,
    )
