"""The domains emit their events in the transaction of the change (no attribute values)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from tests.factories import auth_headers, create_customer
from vault.events.models import OutboxEvent
from vault.provenance import Caller


def _events(runtime, customer_id) -> list[OutboxEvent]:
    with Session(runtime.engine) as s:
        return list(
            s.execute(
                select(OutboxEvent)
                .where(OutboxEvent.customer_id == customer_id)
                .order_by(OutboxEvent.seq)
            ).scalars()
        )


def test_rectify_emits_customer_updated_with_names_only(client, session, runtime):
    customer = create_customer(session, runtime, first_name="Erika")
    headers = auth_headers(session, runtime, "customers:write")
    session.rollback()
    r = client.patch(
        f"/v1/customers/{customer.id}",
        json={"attributes": {"first_name": "Martha", "phone": None}},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    (event,) = _events(runtime, customer.id)
    assert event.type == "customer.updated"
    assert event.data["customer_id"] == str(customer.id)
    assert event.data["attributes"] == ["first_name", "phone"]
    assert "Martha" not in str(event.data) and "Erika" not in str(event.data)


def test_failed_rectify_emits_nothing(client, session, runtime):
    customer = create_customer(session, runtime)
    headers = auth_headers(session, runtime, "customers:write")
    session.rollback()
    r = client.patch(
        f"/v1/customers/{customer.id}",
        json={"attributes": {"email": "not an address"}},
        headers=headers,
    )
    assert r.status_code == 422
    assert _events(runtime, customer.id) == []


def test_consent_statements_emit_granted_and_withdrawn(session, runtime):
    from datetime import timedelta

    from tests.factories import record_consent
    from vault.db import utcnow

    customer = create_customer(session, runtime)
    granted = record_consent(session, runtime, customer.id, "personalised_offers", "granted")
    withdrawn = record_consent(session, runtime, customer.id, "personalised_offers", "withdrawn")
    # a late statement (older than the decision) decides nothing and tells nobody
    record_consent(
        session,
        runtime,
        customer.id,
        "personalised_offers",
        "granted",
        occurred_at=utcnow() - timedelta(days=3),
    )
    events = _events(runtime, customer.id)
    assert [e.type for e in events] == ["consent.granted", "consent.withdrawn"]
    assert events[0].data == {
        "customer_id": str(customer.id),
        "purpose": "personalised_offers",
        "purpose_version": granted.event.purpose_version,
        "status": "granted",
        "consent_event_id": str(granted.event.id),
        "occurred_at": granted.event.occurred_at.isoformat(),
    }
    assert events[1].data["consent_event_id"] == str(withdrawn.event.id)
    assert events[1].data["status"] == "withdrawn"


def test_double_opt_in_tells_only_the_confirmation(session, runtime):
    from tests.factories import record_consent
    from vault.consent import service as consent_service

    customer = create_customer(session, runtime)
    pending = record_consent(
        session, runtime, customer.id, "newsletter", "granted", token_to_caller=True
    )
    assert _events(runtime, customer.id) == []
    consent_service.confirm(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        token=pending.confirmation_token,
        by=Caller("client:confirmer"),
    )
    session.commit()
    (event,) = _events(runtime, customer.id)
    assert event.type == "consent.granted"
    assert event.data["status"] == "confirmed" and event.data["purpose"] == "newsletter"


def test_a_refusal_is_told_as_a_withdrawal(session, runtime):
    from tests.factories import record_consent

    customer = create_customer(session, runtime)
    record_consent(session, runtime, customer.id, "third_party_ads", "refused")
    (event,) = _events(runtime, customer.id)
    assert event.type == "consent.withdrawn" and event.data["status"] == "refused"
