"""Every consent change is an audit event, with no evidence values in it."""

from sqlalchemy import select

from tests.factories import auth_headers, create_customer
from vault.audit.models import AuditEvent


def test_consent_writes_are_audited(client, session, runtime):
    c = create_customer(session, runtime)
    headers = auth_headers(session, runtime, "consent:write")
    for status, at in (("granted", None), ("withdrawn", None), ("granted", "2020-01-01T00:00:00Z")):
        body = {
            "purpose": "personalised_offers",
            "status": status,
            "channel": "store",
            "evidence": {"ip": "203.0.113.77", "user_agent": "Kasse 7"},
        }
        if at:
            body["occurred_at"], body["late_import"] = at, True
        assert (
            client.post(f"/v1/customers/{c.id}/consents", json=body, headers=headers).status_code
            == 201
        )
    rows = (
        session.execute(
            select(AuditEvent)
            .where(AuditEvent.action == "consent.recorded", AuditEvent.customer_id == c.id)
            .order_by(AuditEvent.id)
        )
        .scalars()
        .all()
    )
    session.rollback()
    assert [(r.actor_type, r.purpose, r.reason) for r in rows] == [
        ("client", "personalised_offers", None),
        ("client", "personalised_offers", None),
        ("client", "personalised_offers", "late_event"),  # kept in the ledger, decided nothing
    ]
    assert ['"status":"granted"' in r.details for r in rows] == [True, False, True]
    # the caller vouched for the backdated statement: the audit event says so
    assert ['"late_import":true' in r.details for r in rows] == [False, False, True]
    dump = " ".join(f"{r.details} {r.attributes} {r.reason}" for r in rows)
    assert "203.0.113" not in dump and "Kasse" not in dump
