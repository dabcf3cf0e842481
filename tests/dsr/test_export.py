"""Art. 15 / Art. 20 export."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from tests.dsr.helpers import audit_actions, customer_with_data, dsr, read, reader
from tests.factories import create_customer, record_consent
from vault.audit.models import AuditEvent
from vault.customers import service as customers_service
from vault.dsr import export as dsr_export
from vault.policy.facts import recipients_public
from vault.provenance import Caller


def test_export_holds_everything_about_the_customer(client, session, runtime):
    customer = customer_with_data(session, runtime)
    create_customer(session, runtime, first_name="Otto")
    record_consent(
        session,
        runtime,
        customer.id,
        "personalised_offers",
        "granted",
        occurred_at=datetime.now(UTC) - timedelta(days=2),
    )
    record_consent(session, runtime, customer.id, "third_party_ads", "refused")
    app = reader(session, runtime, "personalised_offers", "order_fulfilment")
    assert read(client, app, customer.id, "personalised_offers").status_code == 200
    assert read(client, app, customer.id, "order_fulfilment").status_code == 200
    staff = dsr(session, runtime)

    r = client.get(f"/v1/customers/{customer.id}/export", headers=staff)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    doc = r.json()
    assert doc["format"] == "consent-vault/export/v1"
    assert doc["controller"]["name"] == "Tante Emma Online GmbH"
    assert doc["customer"]["id"] == str(customer.id) and doc["customer"]["status"] == "active"
    attrs = {a["name"]: a for a in doc["attributes"]}
    assert attrs["email"]["value"] == "erika.mustermann@example.de"
    assert attrs["phone"]["value"] == "+49301234567"
    assert attrs["email"]["label"] == {"de": "E-Mail-Adresse", "en": "E-mail address"}
    assert attrs["dietary_restrictions"]["special_category"] is True
    assert attrs["dietary_restrictions"]["retention_days"] == 730
    assert "Otto" not in r.text  # nothing of anyone else

    consents = {c["purpose"]: c["status"] for c in doc["consents"]}
    assert consents["personalised_offers"] == "granted"
    assert consents["third_party_ads"] == "refused"
    assert consents["newsletter"] == "none"
    assert [e["status"] for e in doc["consent_history"]] == ["granted", "refused"]
    assert "receipt" not in doc["consent_history"][0]

    purposes = {p["id"]: p for p in doc["purposes"]}
    assert purposes["analytics"]["legal_basis"] == "legitimate_interest"
    assert purposes["tax_records"]["retention_days"] == 3650
    assert purposes["personalised_offers"]["consent"] == "granted"
    assert purposes["order_fulfilment"]["recipients"] == ["crm", "logistics"]
    recipients = {x["id"]: x for x in doc["recipients"]}
    assert recipients["ad_partner"]["kind"] == "third_party"
    assert recipients["ad_partner"]["third_country"] is False
    retention = {x["attribute"]: x for x in doc["retention"]}
    assert retention["dietary_restrictions"] == {
        "attribute": "dietary_restrictions",
        "retention_days": 730,
        "rule": "attribute",
    }
    assert retention["phone"]["rule"] == "purposes" and retention["email"]["rule"] == "none"

    reads = [e for e in doc["access_history"] if e["action"] == "data.read"]
    assert [(e["purpose"], e["outcome"]) for e in reads] == [
        ("personalised_offers", "allowed"),
        ("order_fulfilment", "allowed"),
    ]
    assert reads[0]["actor"].startswith("client:") and "email" in reads[0]["attributes"]
    assert "customer.created" in {e["action"] for e in doc["access_history"]}

    # audited with the attribute names, and recorded as a completed access request
    event = session.execute(
        select(AuditEvent).where(AuditEvent.action == "dsr.access")
    ).scalar_one()
    session.rollback()
    assert event.customer_id == customer.id and "email" in event.attributes.split(",")
    assert "erika" not in (event.details or "").lower()
    r = client.get("/v1/dsr/requests", params={"customer_id": str(customer.id)}, headers=staff)
    (tracked,) = r.json()["requests"]
    assert (tracked["kind"], tracked["status"]) == ("access", "completed")


def test_portability_export_with_receipts_closes_the_open_request(client, session, runtime):
    customer = customer_with_data(session, runtime)
    record_consent(session, runtime, customer.id, "personalised_offers", "granted")
    staff = dsr(session, runtime)
    received = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    created = client.post(
        "/v1/dsr/requests",
        json={"customer_id": str(customer.id), "kind": "portability", "received_at": received},
        headers=staff,
    ).json()
    r = client.get(
        f"/v1/customers/{customer.id}/export",
        params={"kind": "portability", "receipts": "true"},
        headers=staff,
    )
    assert r.status_code == 200
    doc = r.json()
    assert doc["consent_history"][0]["receipt"].count(".") == 2  # a compact JWS
    assert [x["id"] for x in doc["requests"]] == [created["id"]]
    r = client.get(f"/v1/dsr/requests/{created['id']}", headers=staff)
    assert r.json()["status"] == "completed"
    assert "dsr.portability" in audit_actions(runtime, customer.id)
    r = client.get(f"/v1/customers/{customer.id}/export", params={"kind": "erasure"}, headers=staff)
    assert r.status_code == 422


def test_export_service_is_reusable_without_http(session, runtime):
    """The self-service page calls the same function with the customer as actor."""
    customer = customer_with_data(session, runtime)
    doc = dsr_export.export(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=customer.id,
        by=Caller(f"customer:{customer.id}"),
    )
    session.commit()
    assert {a["name"] for a in doc["attributes"]} >= {"email", "first_name", "street"}
    actor = session.execute(
        select(AuditEvent.actor_type).where(AuditEvent.action == "dsr.access")
    ).scalar_one()
    session.rollback()
    assert actor == "customer"


def test_export_waits_for_a_rectification_in_progress(session, runtime):
    """Regression (tests/hardening/test_concurrency_pg.py): on PostgreSQL the export read the
    values and their ``updated_at`` in two statements without the customer lock; a rectify
    that removed an attribute and committed in between made it fail with a 500 (KeyError).
    Under the lock it sees one committed state: the one after the rectification."""
    customer = create_customer(session, runtime, postal_code="10115")
    session.rollback()
    exported: list = []

    def export() -> None:
        with Session(runtime.engine) as s:
            try:
                doc = dsr_export.export(
                    session=s,
                    envelope=runtime.envelope,
                    policy=runtime.policy,
                    customer_id=customer.id,
                    by=Caller("cli"),
                )
                s.commit()
                exported.append(doc)
            except BaseException as exc:
                s.rollback()
                exported.append(exc)

    with Session(runtime.engine) as writer:
        customers_service.rectify(
            session=writer,
            envelope=runtime.envelope,
            policy=runtime.policy,
            customer_id=customer.id,
            attributes={"postal_code": None, "first_name": "Max"},
        )
        t = threading.Thread(target=export)
        t.start()
        t.join(0.5)  # the export reads what it can while the rectification holds its locks
        writer.commit()
    t.join(30)
    (doc,) = exported
    assert isinstance(doc, dict), doc
    values = {a["name"]: a["value"] for a in doc["attributes"]}
    assert "postal_code" not in values and values["first_name"] == "Max"


def test_third_country_recipients_are_marked(runtime):
    from vault.policy.models import I18nText, Recipient

    policy = runtime.policy.model_copy(
        update={
            "recipients": {
                **runtime.policy.recipients,
                "ad_partner": Recipient(
                    id="ad_partner", name=I18nText(de="X", en="X"), kind="third_party", country="US"
                ),
            }
        }
    )
    marked = {r["id"]: r["third_country"] for r in recipients_public(policy)}
    assert marked["ad_partner"] is True and marked["crm"] is False
