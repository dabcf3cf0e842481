"""Arranging customers with consents, preferences and contacts for the preference tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlmodel import Session

from tests.factories import create_customer, record_consent
from vault.consent import service as consent_service
from vault.preferences import service as preferences_service
from vault.provenance import Caller
from vault.runtime import Runtime

STAFF = Caller("client:staff-console")


def granted_newsletter(session: Session, runtime: Runtime) -> uuid.UUID:
    """A customer with a confirmed newsletter consent (double opt-in)."""
    customer = create_customer(session, runtime)
    result = record_consent(
        session, runtime, customer.id, "newsletter", token_to_caller=True, late_import=False
    )
    consent_service.confirm(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        token=result.confirmation_token,
        by=Caller("client:confirmer"),
    )
    session.commit()
    return customer.id


def change(
    session: Session,
    runtime: Runtime,
    customer_id: uuid.UUID,
    now: datetime | None = None,
    **change: Any,
):
    result = preferences_service.change(
        session=session,
        policy=runtime.policy,
        customer_id=customer_id,
        change=change,
        channel="web",
        by=STAFF,
        now=now,
    )
    session.commit()
    return result


def audience_ids(client, headers: dict, purpose: str, **params: str) -> set[str]:
    r = client.get(f"/v1/purposes/{purpose}/audience", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return {orjson.loads(line)["customer_id"] for line in r.content.splitlines() if line}


def report_contacts(client, headers: dict, lines: list[dict]) -> dict:
    body = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    r = client.post(
        "/v1/contacts", content=body, headers={**headers, "Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    return r.json()
