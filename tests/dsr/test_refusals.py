"""A refusal is evidence at every door: a legal hold that stops an erasure is audited the same
way whether the erasure came through the API or through the customer's own page (docs/dsr.md)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.dsr.helpers import customer_with_data, dsr
from tests.selfservice.helpers import csrf, sign_in
from vault.audit.models import AuditEvent
from vault.customers.models import Customer, CustomerValue


def _erasure_rows(runtime, customer_id) -> list[tuple]:
    with Session(runtime.engine) as s:
        return [
            tuple(r)
            for r in s.execute(
                select(
                    AuditEvent.actor_type,
                    AuditEvent.actor_id,
                    AuditEvent.outcome,
                    AuditEvent.reason,
                    AuditEvent.request_id,
                )
                .where(AuditEvent.customer_id == customer_id, AuditEvent.action == "dsr.erasure")
                .order_by(AuditEvent.id)
            ).all()
        ]


def _still_there(runtime, customer_id) -> bool:
    with Session(runtime.engine) as s:
        customer = s.get(Customer, customer_id)
        values = s.execute(
            select(CustomerValue.attribute).where(CustomerValue.customer_id == customer_id)
        ).all()
        return customer.status == "active" and customer.dek_wrapped is not None and bool(values)


@pytest.mark.parametrize("door", ["api", "selfservice"])
def test_a_legal_hold_refusal_is_audited_at_every_door(door, client, session, runtime):
    customer = customer_with_data(session, runtime)
    staff = dsr(session, runtime)
    r = client.post(
        f"/v1/customers/{customer.id}/legal-hold", json={"reason": "tax_retention"}, headers=staff
    )
    assert r.status_code == 200, r.text

    if door == "api":
        r = client.delete(f"/v1/customers/{customer.id}", headers=staff)
        assert r.status_code == 409 and r.json()["error"] == "legal_hold"
        actor_type = "client"
    else:
        sign_in(client, session, runtime, customer.id)
        token = csrf(client, "/me/erase")
        r = client.post("/me/erase", data={"csrf_token": token, "confirm": "yes"})
        assert r.status_code == 409 and "text/html" in r.headers["content-type"]
        actor_type = "customer"

    rows = _erasure_rows(runtime, customer.id)
    assert len(rows) == 1, rows
    (got_type, actor_id, outcome, reason, request_id) = rows[0]
    assert (got_type, outcome, reason) == (actor_type, "denied", "legal_hold")
    if door == "selfservice":
        assert actor_id == str(customer.id)
    assert request_id == r.headers["x-request-id"]
    # the refused erasure changed nothing: key, values and status are as before
    assert _still_there(runtime, customer.id)
