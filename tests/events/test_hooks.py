"""The domains emit their events in the transaction of the change (no attribute values)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from tests.factories import auth_headers, create_customer
from vault.events.models import OutboxEvent


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
