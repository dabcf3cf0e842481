"""HTTP of the preference domain: read and change a customer's preferences, report contacts."""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.requests import ClientDisconnect

from vault.auth.deps import Bearer, ConsentReader, ConsentWriter, ContactsWriteBearer, check_bearer
from vault.auth.service import Principal
from vault.consent import store as consent_store
from vault.consent.errors import (
    AsOfInFuture,
    ChannelNotAllowed,
    EvidenceContainsContactData,
    EvidenceKeyNotAllowed,
    IdempotencyConflict,
    IdempotencyKeyReused,
    InvalidEvidence,
)
from vault.consent.evidence import clean_evidence
from vault.customers import importer
from vault.customers import store as customers_store
from vault.db import Instant, SessionDep, utcnow
from vault.errors import (
    CustomerErased,
    CustomerNotFound,
    InvalidRequest,
    PayloadTooLarge,
    VaultError,
    responses,
)
from vault.policy.errors import UnknownPurpose
from vault.preferences import contacts, errors, service
from vault.preferences.schemas import ContactReport, Preferences, PreferencesChange
from vault.runtime import Runtime, RuntimeDep

log = logging.getLogger("vault")
router = APIRouter(tags=["preferences"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="retries with the same key get the first answer, without a second event",
    ),
]


def _json(content: dict, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


@router.get(
    "/v1/customers/{customer_id}/preferences",
    operation_id="get_preferences",
    response_model=Preferences,
    responses=responses(CustomerNotFound, CustomerErased, AsOfInFuture),
)
def get_preferences(
    customer_id: UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: ConsentReader,
    as_of: Annotated[
        Instant | None,
        Query(description="answer as of this past instant (replayed from the ledgers)"),
    ] = None,
) -> Response:
    """The customer's contact channels, topics, frequencies and pause: what they will receive
    (defaults filled in, never more than their consent allows), now or as of a past instant."""
    view = service.current(
        session=session, policy=runtime.policy, customer_id=customer_id, now=utcnow(), as_of=as_of
    )
    return _json(service.as_json(view))


def _request_hash(customer_id: UUID, body: PreferencesChange) -> str:
    doc = {
        "route": "preferences",
        "customer_id": str(customer_id),
        **body.model_dump(mode="json", exclude_unset=True),
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


@router.patch(
    "/v1/customers/{customer_id}/preferences",
    operation_id="change_preferences",
    response_model=Preferences,
    responses=responses(
        CustomerNotFound,
        CustomerErased,
        UnknownPurpose,
        errors.UnknownTopic,
        errors.UnknownFrequency,
        errors.UnknownContactChannel,
        errors.PausedUntilInPast,
        errors.NothingToChange,
        InvalidEvidence,
        EvidenceKeyNotAllowed,
        EvidenceContainsContactData,
        ChannelNotAllowed,
        IdempotencyKeyReused,
        IdempotencyConflict,
        InvalidRequest,
    ),
)
def change_preferences(
    customer_id: UUID,
    body: PreferencesChange,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: ConsentWriter,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Change some of the customer's preferences (keys left out stay); the answer is the
    whole new view. Every change is an event with its touchpoint and evidence, audited and
    told to webhooks (``preference.changed``)."""
    by = principal.caller
    request_hash = None
    if idempotency_key is not None:
        clean_evidence(body.evidence)  # refuse what cannot be hashed before hashing it
        customers_store.lock_customer(session, customer_id)
        request_hash = _request_hash(customer_id, body)
        seen = consent_store.read_idempotency(session, by.actor, idempotency_key)
        if seen is not None:
            if seen.request_hash != request_hash:
                raise IdempotencyKeyReused()
            return _json(dict(seen.response))
    result = service.change(
        session=session,
        policy=runtime.policy,
        customer_id=customer_id,
        change=body.change(),
        channel=body.channel,
        actor=body.actor,
        evidence=body.evidence,
        by=by,
    )
    answer = service.as_json(result.view)
    if idempotency_key is not None and request_hash is not None:
        try:
            consent_store.insert_idempotency(
                session,
                {
                    "client": by.actor,
                    "key": idempotency_key,
                    "request_hash": request_hash,
                    "customer_id": customer_id,
                    "response": answer,
                    "token_ciphertext": None,
                    "created_at": utcnow(),
                },
            )
        except IntegrityError:
            raise IdempotencyConflict() from None
    return _json(answer)


@router.post(
    "/v1/contacts",
    operation_id="report_contacts",
    response_model=ContactReport,
    responses=responses(importer.TooManyLines, PayloadTooLarge),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "description": 'one contact sent per line: {"customer_id", "purpose", '
            '"contact_channel", "sent_at"}',
        }
    },
)
async def report_contacts(
    request: Request, runtime: RuntimeDep, bearer: ContactsWriteBearer
) -> dict:
    """Report the contacts a sending tool sent (NDJSON): what frequency caps count. Good lines
    are stored, bad lines are reported by line number; limits as for the customer import."""
    principal = await runtime.transaction(check_bearer, runtime=runtime, bearer=bearer)
    report = contacts.ContactReport()
    lines = importer.LineSplitter(max_lines=runtime.settings.max_import_lines)
    try:
        async for piece in request.stream():
            for chunk in lines.feed(piece):
                await _chunk(runtime, bearer, principal, chunk, report)
        for chunk in lines.finish():
            await _chunk(runtime, bearer, principal, chunk, report)
    except VaultError as exc:
        exc.extra["report"] = report.as_dict()
        raise
    except ClientDisconnect:
        log.info("contacts %s: the client went away", principal.request_id)
    return report.as_dict()


async def _chunk(
    runtime: Runtime,
    bearer: Bearer,
    principal: Principal,
    chunk: importer.Chunk,
    report: contacts.ContactReport,
) -> None:
    now = utcnow()
    parsed, chunk_report = await run_in_threadpool(
        contacts.parse_chunk,
        chunk,
        policy=runtime.policy,
        client_purposes=frozenset(principal.purposes),
        now=now,
    )
    await runtime.transaction(
        _store, runtime=runtime, bearer=bearer, parsed=parsed, report=chunk_report, now=now
    )
    report.merge(chunk_report)  # committed


def _store(
    *,
    session: Session,
    runtime: Runtime,
    bearer: Bearer,
    parsed: list[contacts.ParsedContact],
    report: contacts.ContactReport,
    now: Any,
) -> None:
    principal = check_bearer(session=session, runtime=runtime, bearer=bearer)
    contacts.store_chunk(
        session=session,
        parsed=parsed,
        report=report,
        by=principal.caller,
        client_id=principal.client_id,
        now=now,
    )
