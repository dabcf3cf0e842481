"""The HTTP consent write with ``Idempotency-Key``: the first answer is kept and replayed.

The kept answer is plain JSON; its confirmation token, if any, is stored encrypted under the
customer's data key. A key is per calling client.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from vault.config import Settings
from vault.consent import service as consent_service
from vault.consent import store as consent_store
from vault.consent.errors import IdempotencyConflict, IdempotencyKeyReused
from vault.consent.evidence import clean_evidence
from vault.consent.schemas import ConsentWrite, write_result
from vault.crypto.envelope import Envelope
from vault.crypto.signing import Signer
from vault.customers import service as customers_service
from vault.customers import store as customers_store
from vault.db import utcnow
from vault.policy import Policy
from vault.provenance import Caller


def _request_hash(customer_id: UUID, write: ConsentWrite) -> str:
    # late_import only when set: answers kept before it existed still match their retries
    fields = write.model_dump(mode="json", exclude=None if write.late_import else {"late_import"})
    doc = {"customer_id": str(customer_id), **fields}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


_TOKEN_AAD_NAME = "consent_idempotency_token"


def submit(
    *,
    session: Session,
    policy: Policy,
    signer: Signer,
    settings: Settings,
    envelope: Envelope,
    customer_id: UUID,
    write: ConsentWrite,
    by: Caller,
    idempotency_key: str | None = None,
    token_to_caller: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``POST /v1/customers/{id}/consents``: record and answer; with an ``Idempotency-Key`` the
    first answer is kept (its confirmation token encrypted under the customer's data key) and
    a retry by the same client gets it again without a second event. A double opt-in grant's
    token goes to the customer by mail, or to the caller when ``token_to_caller`` (the client
    holds ``consent:confirm``)."""
    now = now or utcnow()
    request_hash = None
    if idempotency_key is not None:
        clean_evidence(write.evidence)  # refuse what cannot be hashed before hashing it
        customers_store.lock_customer(session, customer_id)
        request_hash = _request_hash(customer_id, write)
        seen = consent_store.read_idempotency(session, by.actor, idempotency_key)
        if seen is not None:
            if seen.request_hash != request_hash:
                raise IdempotencyKeyReused()
            response = dict(seen.response)
            if seen.token_ciphertext is not None:
                customer = customers_service.get_customer(session, customer_id)
                key = customers_service.data_key(envelope, customer)
                token = key.decrypt(_TOKEN_AAD_NAME, seen.token_ciphertext).decode()
                response["confirmation_token"] = token
            return response
    result = consent_service.record_event(
        session=session,
        policy=policy,
        signer=signer,
        settings=settings,
        customer_id=customer_id,
        purpose=write.purpose,
        status=write.status,
        channel=write.channel,
        method=write.method,
        actor=write.actor,
        by=by,
        language=write.language,
        occurred_at=write.occurred_at,
        evidence=write.evidence,
        late_import=write.late_import,
        envelope=envelope,
        token_to_caller=token_to_caller,
        now=now,
    )
    response = write_result(result, policy.purposes[write.purpose], now)
    if idempotency_key is not None and request_hash is not None:
        ciphertext = None
        if result.confirmation_token is not None:
            customer = customers_service.get_customer(session, customer_id)
            key = customers_service.data_key(envelope, customer)
            ciphertext = key.encrypt(_TOKEN_AAD_NAME, result.confirmation_token.encode())
        stored = {k: v for k, v in response.items() if k != "confirmation_token"}
        try:
            consent_store.insert_idempotency(
                session,
                {
                    "client": by.actor,
                    "key": idempotency_key,
                    "request_hash": request_hash,
                    "customer_id": customer_id,
                    "response": stored,
                    "token_ciphertext": ciphertext,
                    "created_at": now,
                },
            )
        except IntegrityError:
            # the same key used at the same moment for another customer: the whole request
            # (event included) rolls back
            raise IdempotencyConflict() from None
    return response
