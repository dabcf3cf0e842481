"""GET and PATCH /v1/customers/{id}/preferences, POST /v1/contacts, and where preferences show."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.factories import auth_headers, create_customer, record_consent
from tests.preferences.helpers import change, granted_newsletter, report_contacts
from vault.audit.models import AuditEvent
from vault.events.models import OutboxEvent
from vault.preferences import service as preferences_service
from vault.preferences.models import Contact, PreferenceEvent
from vault.selfservice.summary import summary


@pytest.fixture
def headers(session, runtime):
    return auth_headers(session, runtime, "consent:read", "consent:write", purposes=["newsletter"])


def test_defaults_follow_the_policy_and_never_exceed_the_consent(client, session, runtime, headers):
    cid = create_customer(session, runtime).id
    record_consent(session, runtime, cid, "personalised_offers")
    r = client.get(f"/v1/customers/{cid}/preferences", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == str(cid)
    assert body["contact_channels"] == {"email": True, "push": True}
    assert body["topics"]["personalised_offers"] == {"weekly_offers": True, "loyalty": True}
    # no newsletter consent: its topics show off, whatever the defaults
    assert set(body["topics"]["newsletter"].values()) == {False}
    assert body["frequency"] == {"newsletter": "weekly", "personalised_offers": "weekly"}
    assert body["paused_until"] is None


def test_patch_changes_part_records_an_event_audits_and_emits(client, session, runtime, headers):
    cid = granted_newsletter(session, runtime)
    r = client.patch(
        f"/v1/customers/{cid}/preferences",
        headers=headers,
        json={
            "topics": {"newsletter": {"wine": False}},
            "frequency": {"newsletter": "monthly"},
            "channel": "call_center",
            "actor": "staff:4711",
            "evidence": {"staff_id": "4711", "ip": "203.0.113.77"},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["topics"]["newsletter"]["wine"] is False
    assert body["topics"]["newsletter"]["recipes"] is True
    assert body["frequency"]["newsletter"] == "monthly"
    session.rollback()
    event = session.execute(
        select(PreferenceEvent).where(PreferenceEvent.customer_id == cid)
    ).scalar_one()
    assert event.channel == "call_center" and event.actor == "staff:4711"
    assert event.evidence == {"staff_id": "4711", "ip": "203.0.113.0/24"}
    audit = session.execute(
        select(AuditEvent).where(
            AuditEvent.customer_id == cid, AuditEvent.action == "preference.changed"
        )
    ).scalar_one()
    assert "wine" in str(audit.details) and "203.0.113" not in str(audit.details)
    outbox = session.execute(
        select(OutboxEvent).where(
            OutboxEvent.customer_id == cid, OutboxEvent.type == "preference.changed"
        )
    ).scalar_one()
    assert outbox.data["change"]["topics"] == {"newsletter": {"wine": False}}
    view = preferences_service.current(
        session=session, policy=runtime.policy, customer_id=cid, now=datetime.now(UTC)
    )
    newsletter = runtime.policy.purposes["newsletter"]
    assert summary(view, newsletter, "en") == (
        "at most once a month, by e-mail, only about fruit and vegetables, recipes and weekly "
        "offers"
    )
    assert summary(view, newsletter, "de").startswith(
        "höchstens einmal im Monat, per E-Mail, nur zu"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"topics": {"newsletter": {"beer": False}}}, "unknown_topic"),
        ({"topics": {"nope": {"wine": False}}}, "unknown_purpose"),
        ({"frequency": {"newsletter": "daily"}}, "unknown_frequency"),
        ({"frequency": {"analytics": "weekly"}}, "unknown_frequency"),
        ({"contact_channels": {"fax": False}}, "unknown_contact_channel"),
        ({"contact_channels": {"sms": False}}, "unknown_contact_channel"),  # no purpose uses it
        ({"paused_until": "2020-01-01T00:00:00Z"}, "paused_until_in_past"),
        ({}, "nothing_to_change"),
        (
            {"frequency": {"newsletter": "weekly"}, "evidence": {"email": "x@y.de"}},
            "evidence_key_not_allowed",
        ),
    ],
)
def test_patch_refuses_unknown_names_with_codes(client, session, runtime, headers, body, code):
    cid = create_customer(session, runtime).id
    r = client.patch(
        f"/v1/customers/{cid}/preferences", headers=headers, json={**body, "channel": "web"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == code
    assert "beer" not in r.text and "daily" not in r.text and "fax" not in r.text


def test_selfservice_channel_is_refused_outside_me(client, session, runtime, headers):
    cid = create_customer(session, runtime).id
    r = client.patch(
        f"/v1/customers/{cid}/preferences",
        headers=headers,
        json={"frequency": {"newsletter": "monthly"}, "channel": "selfservice"},
    )
    assert r.status_code == 422 and r.json()["error"] == "channel_not_allowed"


def test_idempotency_key_replays_the_first_answer_without_a_second_event(
    client, session, runtime, headers
):
    cid = create_customer(session, runtime).id
    body = {"frequency": {"newsletter": "quarterly"}, "channel": "app"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.patch(f"/v1/customers/{cid}/preferences", headers={**headers, **key}, json=body)
    again = client.patch(f"/v1/customers/{cid}/preferences", headers={**headers, **key}, json=body)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    session.rollback()
    n = session.execute(select(PreferenceEvent).where(PreferenceEvent.customer_id == cid)).all()
    assert len(n) == 1
    other = client.patch(
        f"/v1/customers/{cid}/preferences",
        headers={**headers, **key},
        json={**body, "frequency": {"newsletter": "weekly"}},
    )
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"


def test_as_of_answers_the_preferences_of_last_week(client, session, runtime, headers):
    now = datetime.now(UTC)
    cid = create_customer(session, runtime).id
    record_consent(
        session, runtime, cid, "personalised_offers", occurred_at=now - timedelta(days=30)
    )
    change(
        session,
        runtime,
        cid,
        now=now - timedelta(days=10),
        topics={"personalised_offers": {"loyalty": False}},
    )
    change(
        session,
        runtime,
        cid,
        topics={"personalised_offers": {"loyalty": True, "weekly_offers": False}},
    )
    last_week = (now - timedelta(days=7)).isoformat()
    r = client.get(f"/v1/customers/{cid}/preferences", headers=headers, params={"as_of": last_week})
    assert r.status_code == 200, r.text
    assert r.json()["topics"]["personalised_offers"] == {"weekly_offers": True, "loyalty": False}
    r = client.get(f"/v1/customers/{cid}/preferences", headers=headers)
    assert r.json()["topics"]["personalised_offers"] == {"weekly_offers": False, "loyalty": True}
    before = (now - timedelta(days=40)).isoformat()
    r = client.get(f"/v1/customers/{cid}/preferences", headers=headers, params={"as_of": before})
    assert set(r.json()["topics"]["personalised_offers"].values()) == {False}  # no consent yet
    future = (now + timedelta(days=1)).isoformat()
    r = client.get(f"/v1/customers/{cid}/preferences", headers=headers, params={"as_of": future})
    assert r.status_code == 422 and r.json()["error"] == "as_of_in_future"


def test_audience_parameters_are_checked(client, session, runtime):
    reader = auth_headers(
        session, runtime, "data:read", purposes=["personalised_offers", "newsletter"]
    )
    cases = [
        ("personalised_offers", {}, "contact_channel_required"),
        ("personalised_offers", {"contact_channel": "sms"}, "unknown_contact_channel"),
        ("newsletter", {"topic": "beer"}, "unknown_topic"),
    ]
    for purpose, params, code in cases:
        r = client.get(f"/v1/purposes/{purpose}/audience", headers=reader, params=params)
        assert r.status_code == 422 and r.json()["error"] == code, (purpose, params, r.text)
    cid = create_customer(session, runtime).id
    r = client.get(
        f"/v1/customers/{cid}/data",
        headers=reader,
        params={"purpose": "newsletter", "contact_channel": "push"},
    )
    assert r.status_code == 422 and r.json()["error"] == "unknown_contact_channel"


def test_contacts_count_lines_and_reject_bad_ones(client, session, runtime):
    cid = create_customer(session, runtime).id
    erased = create_customer(session, runtime).id
    dsr = auth_headers(session, runtime, "dsr:execute")
    assert client.delete(f"/v1/customers/{erased}", headers=dsr).status_code == 204
    sender = auth_headers(session, runtime, "contacts:write", purposes=["newsletter"])
    now = datetime.now(UTC).isoformat()
    good = {
        "customer_id": str(cid),
        "purpose": "newsletter",
        "contact_channel": "email",
        "sent_at": now,
    }
    lines = [
        good,
        {**good, "customer_id": str(uuid.uuid4())},
        {**good, "customer_id": str(erased)},
        {**good, "purpose": "personalised_offers"},
        {**good, "contact_channel": "push"},
        {**good, "sent_at": "yesterday"},
        {**good, "sent_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        {**good, "extra": 1},
    ]
    report = report_contacts(client, sender, lines)
    assert report["received"] == 8 and report["accepted"] == 1 and report["rejected"] == 7
    assert [e["error"] for e in sorted(report["errors"], key=lambda e: e["line"])] == [
        "customer_not_found",
        "customer_erased",
        "purpose_not_permitted_for_client",
        "unknown_contact_channel",
        "invalid_sent_at",
        "sent_at_in_future",
        "invalid_line",
    ]
    session.rollback()
    audit = session.execute(
        select(AuditEvent).where(
            AuditEvent.customer_id == cid, AuditEvent.action == "contact.recorded"
        )
    ).scalar_one()
    assert audit.outcome == "allowed" and audit.purpose == "newsletter"
    r = client.post(
        "/v1/contacts", content=b"{}\n", headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 401


def test_export_dossier_and_erasure(client, session, runtime, headers):
    cid = granted_newsletter(session, runtime)
    change(session, runtime, cid, contact_channels={"email": False})
    sender = auth_headers(session, runtime, "contacts:write", purposes=["newsletter"])
    line = {
        "customer_id": str(cid),
        "purpose": "newsletter",
        "contact_channel": "email",
        "sent_at": datetime.now(UTC).isoformat(),
    }
    assert report_contacts(client, sender, [line])["accepted"] == 1
    dsr = auth_headers(session, runtime, "dsr:execute")
    export = client.get(f"/v1/customers/{cid}/export", headers=dsr).json()
    assert export["preferences"]["current"]["contact_channels"]["email"] is False
    assert export["preferences"]["changes"][0]["change"] == {"contact_channels": {"email": False}}
    assert export["preferences"]["contacts"][0]["purpose"] == "newsletter"
    dossier = client.get(f"/v1/customers/{cid}/consents/dossier", headers=headers).json()
    assert dossier["dossier"]["preferences"]["changes"][0]["channel"] == "web"
    newsletter = next(p for p in dossier["dossier"]["purposes"] if p["purpose"] == "newsletter")
    assert newsletter["last_used"]["action"] == "contact.recorded"
    assert client.delete(f"/v1/customers/{cid}", headers=dsr).status_code == 204
    session.rollback()
    assert session.execute(select(Contact).where(Contact.customer_id == cid)).first() is None
    dossier = client.get(f"/v1/customers/{cid}/consents/dossier", headers=headers).json()
    assert dossier["dossier"]["preferences"]["current"] is None
    assert len(dossier["dossier"]["preferences"]["changes"]) == 1  # the ledger stays as proof
    assert client.get(f"/v1/customers/{cid}/preferences", headers=headers).status_code == 410


def test_purposes_list_shows_channels_topics_and_frequencies(client):
    purposes = {p["id"]: p for p in client.get("/v1/purposes").json()}
    news = purposes["newsletter"]
    assert news["contact_channels"] == ["email"]
    assert news["frequencies"] == ["weekly", "monthly", "quarterly"]
    assert [t["id"] for t in news["topics"]] == [
        "fruit_vegetables",
        "wine",
        "recipes",
        "weekly_offers",
    ]
    assert news["topics"][1]["label"] == {"de": "Wein", "en": "Wine"}
    assert purposes["analytics"]["topics"] == []
