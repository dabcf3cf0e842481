"""The privacy office pages: the queue with overdue requests marked, extending and closing,
restriction, objection, legal hold, erasure behind a second confirmation, the dossier, rates
and delivery health; every change audited as ``staff:<id>``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import auth_headers, create_customer, record_consent
from tests.staff.helpers import make_staff, signed_in
from vault.audit.models import AuditEvent
from vault.customers.models import Customer
from vault.dsr import requests as dsr_requests
from vault.dsr.models import DataSubjectRequest
from vault.preferences.models import PreferenceEvent
from vault.provenance import Caller


@pytest.fixture
def officer(runtime, client):
    staff = make_staff(runtime, "privacy_officer")
    csrf = signed_in(client, staff)
    return staff, csrf


def _received(session, customer_id, kind, days_ago):
    now = datetime.now(UTC)
    row = dsr_requests.create_request(
        session=session,
        customer_id=customer_id,
        kind=kind,
        by=Caller("client:test"),
        received_at=now - timedelta(days=days_ago),
        now=now,
    )
    session.commit()
    return row.id


def _erased_at(session, customer_id):
    session.rollback()
    value = session.execute(
        select(Customer.erased_at).where(Customer.id == customer_id)
    ).scalar_one()
    session.rollback()  # an open read would keep SQLite from truncating the WAL
    return value


def _audit(session, action):
    session.rollback()
    return session.execute(
        select(AuditEvent.actor_type, AuditEvent.actor_id).where(AuditEvent.action == action)
    ).all()


def test_the_queue_marks_overdue_requests_first(client, session, runtime, officer):
    c = create_customer(session, runtime)
    fresh = _received(session, c.id, "access", 3)
    late = _received(session, c.id, "erasure", 40)
    r = client.get("/staff/office/requests?lang=en")
    assert r.status_code == 200
    rows = re.findall(r'<tr class="(overdue)?" data-request="([0-9a-f-]+)"', r.text)
    assert rows == [("overdue", str(late)), ("", str(fresh))]
    assert "⚠ overdue" in r.text and "1 request is overdue and listed first." in r.text
    home = client.get("/staff/office?lang=de")
    assert home.status_code == 200 and "Überfällige Anträge" in home.text
    assert str(late) in home.text and str(fresh) not in home.text


def test_extend_and_close_a_request(client, session, runtime, officer):
    staff, csrf = officer
    c = create_customer(session, runtime)
    rid = _received(session, c.id, "access", 20)
    page = client.get(f"/staff/office/requests/{rid}?lang=en")
    assert page.status_code == 200 and "Extend the deadline" in page.text
    r = client.post(
        f"/staff/office/requests/{rid}/extend",
        data={"csrf_token": csrf, "months": "1", "reason": "complexity", "note": "viele Daten"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?done=extended")
    shown = client.get(r.headers["location"] + "&lang=en")
    assert "The deadline was extended." in shown.text and "viele Daten" in shown.text
    # a rejection without a reason: refused in words, nothing changed
    r = client.post(
        f"/staff/office/requests/{rid}/close",
        data={"csrf_token": csrf, "status": "rejected", "reason": ""},
    )
    assert r.status_code == 422 and "needs a reason" in r.text
    # a forged code is a 422 page, not a 500
    r = client.post(
        f"/staff/office/requests/{rid}/close",
        data={"csrf_token": csrf, "status": "completed", "reason": "because"},
    )
    assert r.status_code == 422
    r = client.post(
        f"/staff/office/requests/{rid}/close",
        data={"csrf_token": csrf, "status": "completed", "reason": "fulfilled"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    session.rollback()
    row = session.get(DataSubjectRequest, rid)
    assert (row.status, row.close_reason, row.handled_by) == (
        "completed",
        "fulfilled",
        f"staff:{staff.id}",
    )
    assert row.extension_months == 1
    assert ("staff", staff.id) in _audit(session, "dsr.request_extended")
    assert ("staff", staff.id) in _audit(session, "dsr.request_closed")
    again = client.post(
        f"/staff/office/requests/{rid}/close",
        data={"csrf_token": csrf, "status": "completed"},
    )
    assert again.status_code == 409 and "already closed" in again.text


def test_a_post_without_the_csrf_token_changes_nothing(client, session, runtime, officer):
    c = create_customer(session, runtime)
    rid = _received(session, c.id, "access", 1)
    r = client.post(f"/staff/office/requests/{rid}/close", data={"status": "completed"})
    assert r.status_code == 403
    session.rollback()
    assert session.get(DataSubjectRequest, rid).status == "open"


def test_restriction_objection_and_legal_hold(client, session, runtime, officer):
    staff, csrf = officer
    c = create_customer(session, runtime)
    base = f"/staff/office/customers/{c.id}"
    steps = [
        (
            "/restriction",
            {"reason": "accuracy_contested", "note": "Adresse strittig"},
            "restricted",
        ),
        ("/restriction/lift", {}, "restriction_lifted"),
        ("/objection", {"scope": "direct_marketing"}, "objected"),
        ("/objection/withdraw", {"scope": "direct_marketing"}, "objection_withdrawn"),
        ("/legal-hold", {"reason": "tax_retention"}, "hold_set"),
    ]
    for path, form, done in steps:
        r = client.post(base + path, data={"csrf_token": csrf, **form}, follow_redirects=False)
        assert r.status_code == 303, (path, r.text)
        assert r.headers["location"] == f"{base}?done={done}"
    page = client.get(base + "?lang=en")
    assert page.status_code == 200
    assert "tax records (§ 147 AO)" in page.text
    assert "Erasure is refused while the legal hold applies." in page.text
    assert f"{base}/erase" not in page.text  # no way to the erasure while the hold applies
    for action in ("dsr.restriction", "dsr.objection", "dsr.legal_hold_set"):
        assert ("staff", staff.id) in _audit(session, action)
    bad = client.post(base + "/objection", data={"csrf_token": csrf, "scope": "newsletter"})
    assert bad.status_code == 422


def test_erasure_takes_a_second_confirmation(client, session, runtime, officer):
    staff, csrf = officer
    c = create_customer(session, runtime)
    base = f"/staff/office/customers/{c.id}"
    assert f'href="{base}/erase"' in client.get(base).text
    confirm = client.get(f"{base}/erase?lang=en")
    assert confirm.status_code == 200 and "This cannot be undone." in confirm.text
    unticked = client.post(f"{base}/erase", data={"csrf_token": csrf})
    assert unticked.status_code == 422 and "Nothing was erased" in unticked.text
    session.rollback()
    assert _erased_at(session, c.id) is None
    r = client.post(
        f"{base}/erase", data={"csrf_token": csrf, "confirm": "yes"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == f"{base}?done=erased"
    session.rollback()
    assert _erased_at(session, c.id) is not None
    assert ("staff", staff.id) in _audit(session, "dsr.erasure")
    assert "The customer was erased." in client.get(r.headers["location"] + "&lang=en").text


def test_erasure_under_a_legal_hold_is_refused_and_audited(client, session, runtime, officer):
    staff, csrf = officer
    c = create_customer(session, runtime)
    base = f"/staff/office/customers/{c.id}"
    client.post(base + "/legal-hold", data={"csrf_token": csrf, "reason": "litigation"})
    r = client.post(f"{base}/erase", data={"csrf_token": csrf, "confirm": "yes"})
    assert r.status_code == 409
    session.rollback()
    assert _erased_at(session, c.id) is None
    refused = session.execute(
        select(AuditEvent.actor_id, AuditEvent.outcome, AuditEvent.reason).where(
            AuditEvent.action == "dsr.erasure"
        )
    ).all()
    assert refused == [(staff.id, "denied", "legal_hold")]


def test_lookup_by_email_and_the_dossier(client, session, runtime, officer):
    staff, csrf = officer
    c = create_customer(session, runtime, email="erika.lookup@example.de")
    record_consent(session, runtime, c.id, "personalised_offers", channel="store")
    r = client.post(
        "/staff/office/lookup",
        data={"csrf_token": csrf, "query": "Erika.Lookup@example.de"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/staff/office/customers/{c.id}"
    missing = client.post(
        "/staff/office/lookup", data={"csrf_token": csrf, "query": "nobody@example.de"}
    )
    assert missing.status_code == 404 and "Kein Kunde gefunden." in missing.text
    for query in ("not an address", "00000000-0000-4000-8000-000000000000", ""):
        r = client.post("/staff/office/lookup", data={"csrf_token": csrf, "query": query})
        assert r.status_code == 404 and "Kein Kunde gefunden." in r.text, query
    dossier = client.get(f"/staff/office/customers/{c.id}/dossier?lang=en")
    assert dossier.status_code == 200 and "Consent dossier" in dossier.text
    assert "erika.lookup" not in dossier.text  # ids, times and hashes only
    assert ("staff", staff.id) in _audit(session, "customer.lookup")
    assert ("staff", staff.id) in _audit(session, "staff.customer_viewed")


def test_rates_and_health_pages(client, session, runtime, officer):
    c = create_customer(session, runtime)
    record_consent(session, runtime, c.id, "personalised_offers", channel="store")
    r = client.get("/staff/office/rates?lang=en")
    assert r.status_code == 200
    with_topics = sum(1 for p in runtime.policy.purposes.values() if p.topics)
    # three consent charts, one topic chart per purpose with topics, changes by touchpoint, week
    assert r.text.count('role="img"') == 3 + with_topics + 2 and "<script" not in r.text
    assert 'data-series="granted" data-count="1"' in r.text
    assert "Preference rates" in r.text and "No preference changes in this period." in r.text
    assert client.get("/staff/office/rates?weeks=0").status_code == 422
    health = client.get("/staff/office/health?lang=de")
    assert health.status_code == 200 and "Webhook" in health.text


@pytest.mark.parametrize("role", ["store", "call_center", "auditor"])
def test_other_roles_are_refused(runtime, app, role):
    with TestClient(app, raise_server_exceptions=False) as other:
        signed_in(other, make_staff(runtime, role))
        assert other.get("/staff/office/requests").status_code == 403


def _bar(html: str, chart_id: str, label: str) -> dict[str, int]:
    """The segments (series -> count) of one bar of one chart on the page."""
    svg = re.search(rf'<svg[^>]* id="{chart_id}".*?</svg>', html, re.S)
    assert svg, chart_id
    bar = re.search(rf'<g class="bar" data-label="{re.escape(label)}".*?</g>', svg.group(0), re.S)
    if bar is None:
        return {}
    found = re.findall(r'data-series="(\w+)" data-count="(\d+)"', bar.group(0))
    return {k: int(v) for k, v in found}


def test_the_rates_page_draws_the_preference_rates(client, session, runtime, officer):
    a, b, c = (create_customer(session, runtime).id for _ in range(3))
    for cid in (a, b, c):
        record_consent(session, runtime, cid, "personalised_offers")
    headers = auth_headers(
        session, runtime, "consent:read", "consent:write", purposes=["newsletter"]
    )
    patches = [
        (a, {"topics": {"personalised_offers": {"loyalty": False}}, "channel": "web"}),
        (
            b,
            {
                "topics": {"personalised_offers": {"loyalty": False, "weekly_offers": False}},
                "frequency": {"personalised_offers": "monthly"},
                "channel": "call_center",
                "actor": "staff:4711",
                "evidence": {"staff_id": "4711"},
            },
        ),
    ]
    for cid, body in patches:
        r = client.patch(f"/v1/customers/{cid}/preferences", headers=headers, json=body)
        assert r.status_code == 200, r.text
    html = client.get("/staff/office/rates?lang=en").text
    assert '<h3 id="prefs-topics-personalised-offers-h">Topics: ' in html
    topics = "prefs-topics-personalised-offers"
    assert _bar(html, topics, "Loyalty points") == {"on": 1, "off": 2}
    assert _bar(html, topics, "Weekly offers") == {"on": 2, "off": 1}
    assert _bar(html, "prefs-channel", "web shop") == {"topics": 1}
    assert _bar(html, "prefs-channel", "call centre") == {"topics": 1, "frequency": 1}
    # the week chart: one bar with changes, its segments as counted from the ledger's rows
    session.rollback()
    parts: dict[str, int] = {}
    for e in session.execute(select(PreferenceEvent)).scalars():
        for part in e.change:
            parts[part] = parts.get(part, 0) + 1
    assert parts == {"topics": 2, "frequency": 1}
    svg = re.search(r'<svg[^>]* id="prefs-week".*?</svg>', html, re.S).group(0)
    labels = re.findall(r'<g class="bar" data-label="([^"]+)" data-total="[1-9]', svg)
    assert len(labels) == 1 and _bar(html, "prefs-week", labels[0]) == parts
    assert svg.count('class="bar"') == 12  # every week of the default window is listed
    de = client.get("/staff/office/rates?lang=de").text
    assert "Präferenzänderungen je Kontaktpunkt" in de and "abgeschaltet" in de
