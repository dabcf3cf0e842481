"""The auditors' pages: filters, verification (ok, first bad seq), exports, no data values."""

from __future__ import annotations

import json
import re

from sqlalchemy import select, text
from sqlmodel import Session

from tests import factories
from tests.audit.helpers import seal, tamper, write
from tests.staff.helpers import make_staff, signed_in
from vault.audit.models import AuditEvent
from vault.db import reader


def _customer_with_a_read(client, session, runtime) -> tuple[str, str]:
    email = factories.unique_email("prüfung")
    h = factories.auth_headers(session, runtime, "customers:write", "consent:write")
    r = client.post(
        "/v1/customers",
        headers=h,
        json={
            "attributes": {"email": email, "first_name": "Wilhelmine", "phone": "+4922155501234"}
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], email


def test_the_log_filters_as_the_api_does_and_shows_no_values(runtime, client, session):
    customer, email = _customer_with_a_read(client, session, runtime)
    auditor = make_staff(runtime, "auditor")
    signed_in(client, auditor)
    r = client.get("/staff/audit", params={"customer_id": customer})
    assert r.status_code == 200
    assert customer in r.text and "customer.created" in r.text
    assert "staff.login" not in r.text  # another customer's / no customer's events left out
    for value in (email, "Wilhelmine", "55501234"):
        assert value not in r.text
    r = client.get("/staff/audit", params={"action": "staff.*"})
    assert f"staff:{auditor.id}" in r.text and "staff.login" in r.text
    assert "customer.created" not in r.text
    # the reading itself is in the log, with the auditor as actor
    with Session(reader(runtime.engine)) as s:
        reads = (
            s.execute(select(AuditEvent).where(AuditEvent.action == "audit.read")).scalars().all()
        )
    assert {(e.actor_type, e.actor_id) for e in reads} == {("staff", auditor.id)}
    assert any('"html"' in (e.details or "") for e in reads)


def test_bad_filters_answer_a_page_not_an_error(runtime, client):
    signed_in(client, make_staff(runtime, "auditor"))
    for params in (
        {"customer_id": "not-a-uuid"},
        {"actor": "Staff:x y"},
        {"outcome": "maybe"},
        {"since": "yesterday"},
        {"cursor": "garbage"},
    ):
        r = client.get("/staff/audit", params=params)
        assert r.status_code == 422, params
        assert "text/html" in r.headers["content-type"]
        assert "notice error" in r.text


def test_time_filters_and_paging(runtime, client):
    write(runtime, 130)
    signed_in(client, make_staff(runtime, "auditor"))
    r = client.get("/staff/audit", params={"action": "data.read"})
    assert r.text.count("<code>data.read</code>") == 100
    nxt = re.search(r'href="/staff/audit\?([^"]+)">', r.text.split("Nächste Seite")[0][-400:])
    assert nxt, "no next page link"
    r = client.get("/staff/audit?" + nxt.group(1).replace("&amp;", "&"))
    assert r.text.count("<code>data.read</code>") == 30
    r = client.get("/staff/audit", params={"action": "data.read", "since": "2999-01-01T00:00"})
    assert r.status_code == 200 and "<code>data.read</code>" not in r.text


def test_verify_shows_ok_then_the_first_bad_seq(runtime, client):
    write(runtime, 10)
    seal(runtime)
    csrf = signed_in(client, make_staff(runtime, "auditor"))
    r = client.post("/staff/audit/verify", data={"csrf_token": csrf})
    assert r.status_code == 200
    assert 'data-ok="true"' in r.text and '<dd id="first-bad-seq">\u2013</dd>' in r.text
    checked = int(re.search(r'<dd id="checked">(\d+)</dd>', r.text).group(1))
    assert checked >= 10
    with tamper(runtime) as conn:
        conn.execute(text("UPDATE audit_event SET outcome = 'denied' WHERE seq = 4"))
    r = client.post("/staff/audit/verify", data={"csrf_token": csrf})
    assert r.status_code == 200
    assert 'data-ok="false"' in r.text
    assert '<dd id="first-bad-seq">4</dd>' in r.text and '<dd id="checked">3</dd>' in r.text


def test_verify_needs_the_csrf_token(runtime, client):
    signed_in(client, make_staff(runtime, "auditor"))
    r = client.post("/staff/audit/verify", data={"csrf_token": "x" * 64})
    assert r.status_code == 403


def test_exports_stream_the_selection(runtime, client, session):
    customer, email = _customer_with_a_read(client, session, runtime)
    signed_in(client, make_staff(runtime, "auditor"))
    r = client.get("/staff/audit/export.ndjson", params={"customer_id": customer})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in r.headers["content-disposition"]
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines and {e["customer_id"] for e in lines} == {customer}
    r = client.get("/staff/audit/export.csv", params={"customer_id": customer})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = r.text.splitlines()
    assert rows[0].startswith("seq,occurred_at,actor,action")
    # the same events, plus the audit.read of the NDJSON export (it names the customer too)
    assert len(rows) == 1 + len(lines) + 1
    assert email not in r.text and "Wilhelmine" not in r.text
    assert client.get("/staff/audit/export.csv", params={"outcome": "x"}).status_code == 422
