from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from vault.audit.actions import AuditAction
from vault.audit.errors import InvalidCursor
from vault.audit.query import (
    CSV,
    NDJSON,
    PAGE_MAX,
    EventFilter,
    csv_chunks,
    iter_events,
    list_events,
    ndjson_lines,
)
from vault.audit.record import record
from vault.audit.schemas import AuditEventPage, VerifyResult
from vault.audit.seal import seal_pending
from vault.audit.verify import verify_engine
from vault.auth.deps import AuditReadBearer, AuditReader, check_bearer
from vault.db import Instant, SessionDep, transaction
from vault.errors import responses
from vault.http import page_size
from vault.runtime import RuntimeDep

router = APIRouter(tags=["audit"])

_EVENTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    **responses(InvalidCursor),
    200: {
        "description": "A page of events, or with `Accept: application/x-ndjson` or "
        "`text/csv` the whole selection as a stream.",
        "content": {NDJSON: {"schema": {"type": "string"}}, CSV: {"schema": {"type": "string"}}},
    },
}


@router.get(
    "/v1/audit/events",
    operation_id="list_audit_events",
    response_model=AuditEventPage,
    responses=_EVENTS_RESPONSES,
)
def list_audit_events(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: AuditReader,
    customer_id: UUID | None = None,
    actor: Annotated[
        str | None,
        Query(max_length=217, pattern=r"^[a-z][a-z_]{1,15}(:[A-Za-z0-9._:\-]{1,200})?$"),
    ] = None,
    purpose: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_]*$")] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z][a-z0-9_.]*(\.\*)?$",
            description="exact, or a prefix such as 'data.*'",
        ),
    ] = None,
    outcome: Annotated[str | None, Query(pattern=r"^(success|allowed|denied|error)$")] = None,
    since: Annotated[
        Instant | None, Query(description="occurred at or after (ISO 8601 with a time zone)")
    ] = None,
    until: Annotated[
        Instant | None, Query(description="occurred before (ISO 8601 with a time zone)")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, page_size(PAGE_MAX)] = 100,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Audit events in insertion order: filtered, paginated, or streamed as NDJSON or CSV."""
    filters = EventFilter(
        customer_id=customer_id,
        actor=actor,
        purpose=purpose,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
    )
    media = NDJSON if accept and NDJSON in accept else CSV if accept and CSV in accept else None
    page = None
    if media is None:
        page = list_events(session=session, filters=filters, cursor=cursor, limit=limit)
    record(
        session=session,
        by=principal.caller,
        action=AuditAction.AUDIT_READ,
        customer_id=customer_id,
        purpose=purpose,
        details={"format": (media or "json").split("/")[-1], "filters": filters.used()},
    )
    if page is not None:
        return {"events": page[0], "next_cursor": page[1]}
    # Streams after the request's transaction (and its audit.read event) has committed,
    # through short read transactions of its own.
    events = iter_events(engine=runtime.engine, filters=filters)
    if media == NDJSON:
        return StreamingResponse(ndjson_lines(events), media_type=NDJSON)
    return StreamingResponse(
        csv_chunks(events),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="audit-events.csv"'},
    )


@router.get(
    "/v1/audit/verify",
    operation_id="verify_audit_log",
    response_model=VerifyResult,
    responses=responses(),
)
def verify_audit_log(
    request: Request, runtime: RuntimeDep, bearer: AuditReadBearer
) -> VerifyResult:
    """Chain pending events, then recompute the whole chain and check every checkpoint."""
    # The token check and the audit.read event commit in a transaction of their own first:
    # sealing and verifying run in theirs, and on SQLite no write lock may be held meanwhile.
    with transaction(runtime.engine) as session:
        principal = check_bearer(session=session, runtime=runtime, bearer=bearer)
        record(
            session=session,
            by=principal.caller,
            action=AuditAction.AUDIT_READ,
            details={"format": "verify"},
        )
    seal_pending(engine=runtime.engine, keys=runtime.keys, checkpoint=True)
    return verify_engine(engine=runtime.engine, keys=runtime.keys)
