"""Restriction (Art. 18) and objection (Art. 21) through the DSR API, checked end to end
against the access API."""

import pytest
from sqlalchemy import select

from tests.dsr.helpers import audit_actions, customer_with_data, dsr, outbox, read, reader
from tests.factories import record_consent
from vault.dsr.models import DataSubjectRequest


@pytest.fixture
def customer(session, runtime):
    c = customer_with_data(session, runtime)
    record_consent(session, runtime, c.id, "personalised_offers", "granted")
    return c


def _object(client, headers, cid, scope, method="POST"):
    return client.request(
        method, f"/v1/customers/{cid}/objection", json={"scope": scope}, headers=headers
    )


def test_restriction_blocks_every_purpose_until_lifted(client, session, runtime, customer):
    app = reader(session, runtime, "personalised_offers", "analytics", "order_fulfilment")
    staff = dsr(session, runtime)
    purposes = ("personalised_offers", "analytics", "order_fulfilment")
    assert [read(client, app, customer.id, p).status_code for p in purposes] == [200] * 3

    r = client.post(f"/v1/customers/{customer.id}/restriction", headers=staff)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "restricted" and body["request_id"]
    for p in purposes:
        r = read(client, app, customer.id, p)
        assert r.status_code == 403 and r.json()["error"] == "restricted"
        assert "Erika" not in r.text
    # idempotent: a second restriction changes nothing and emits nothing
    assert client.post(f"/v1/customers/{customer.id}/restriction", headers=staff).status_code == 200

    r = client.delete(f"/v1/customers/{customer.id}/restriction", headers=staff)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert [read(client, app, customer.id, p).status_code for p in purposes] == [200] * 3

    types = [(e.type, e.data.get("status")) for e in outbox(runtime, customer.id)]
    assert types == [("customer.restricted", "restricted"), ("customer.updated", "active")]
    actions = audit_actions(runtime, customer.id)
    assert actions.count("dsr.restriction") == 2 and "dsr.restriction_lifted" in actions
    session.rollback()
    kinds = [
        (r.kind, r.status, r.handled_by is not None)
        for r in session.execute(
            select(DataSubjectRequest).where(DataSubjectRequest.customer_id == customer.id)
        ).scalars()
    ]
    session.rollback()
    assert kinds == [("restriction", "completed", True)] * 2


def test_direct_marketing_objection_is_absolute(client, session, runtime, customer):
    app = reader(session, runtime, "personalised_offers", "analytics", "order_fulfilment")
    staff = dsr(session, runtime)
    r = _object(client, staff, customer.id, "direct_marketing")
    assert r.status_code == 200 and r.json()["objections"] == ["direct_marketing"]
    # consent is still granted, yet the direct-marketing purpose gets nothing
    r = read(client, app, customer.id, "personalised_offers")
    assert r.status_code == 403 and r.json()["error"] == "objected"
    # purposes that are not direct marketing are unaffected
    assert read(client, app, customer.id, "analytics").status_code == 200
    assert read(client, app, customer.id, "order_fulfilment").status_code == 200
    # a new grant does not override the objection
    record_consent(session, runtime, customer.id, "personalised_offers", "granted")
    assert read(client, app, customer.id, "personalised_offers").status_code == 403

    r = _object(client, staff, customer.id, "direct_marketing", "DELETE")
    assert r.status_code == 200 and r.json()["objections"] == []
    assert read(client, app, customer.id, "personalised_offers").status_code == 200
    assert [e.type for e in outbox(runtime, customer.id)] == [
        "customer.objected",
        "customer.updated",
    ]


def test_objection_to_a_legitimate_interest_purpose(client, session, runtime, customer):
    app = reader(session, runtime, "personalised_offers", "analytics")
    staff = dsr(session, runtime)
    assert read(client, app, customer.id, "analytics").json()["attributes"]["birth_date"] == "1984"
    r = _object(client, staff, customer.id, "analytics")
    assert r.status_code == 200 and r.json()["objections"] == ["analytics"]
    r = read(client, app, customer.id, "analytics")
    assert r.status_code == 403 and r.json()["error"] == "objected"
    assert read(client, app, customer.id, "personalised_offers").status_code == 200
    both = _object(client, staff, customer.id, "direct_marketing").json()["objections"]
    assert both == ["analytics", "direct_marketing"]
    _object(client, staff, customer.id, "analytics", "DELETE")
    assert read(client, app, customer.id, "analytics").status_code == 200
    assert read(client, app, customer.id, "personalised_offers").status_code == 403
    assert "dsr.objection" in audit_actions(runtime, customer.id)
    assert "dsr.objection_withdrawn" in audit_actions(runtime, customer.id)


@pytest.mark.parametrize("scope", ["newsletter", "order_fulfilment", "tax_records", "nope"])
def test_objection_scope_must_be_direct_marketing_or_legitimate_interest(
    client, session, runtime, customer, scope
):
    staff = dsr(session, runtime)
    for method in ("POST", "DELETE"):
        r = _object(client, staff, customer.id, scope, method)
        assert r.status_code == 422 and r.json()["error"] == "invalid_objection_scope"
        assert "analytics" in r.json()["detail"]
    assert outbox(runtime, customer.id) == []


def test_rights_of_unknown_and_erased_customers(client, session, runtime, customer):
    staff = dsr(session, runtime)
    unknown = "7f1f4b0c-0000-4000-8000-000000000000"
    r = client.post(f"/v1/customers/{unknown}/restriction", headers=staff)
    assert r.status_code == 404 and r.json()["error"] == "customer_not_found"
    assert client.delete(f"/v1/customers/{customer.id}", headers=staff).status_code == 204
    r = client.post(f"/v1/customers/{customer.id}/restriction", headers=staff)
    assert r.status_code == 410 and r.json()["error"] == "customer_erased"
    assert _object(client, staff, customer.id, "analytics").status_code == 410
