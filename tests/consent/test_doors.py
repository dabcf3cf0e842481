"""Every door that records consent statements applies the same two rules: the evidence
allowlist (``vault.consent.evidence.clean_evidence``) and the backdating horizon
(``vault.consent.service.check_occurred_at``, ``VAULT_CONSENT_BACKDATE_DAYS``, ``late_import``).
The doors: the API write (with and without ``Idempotency-Key``), the NDJSON import, and the
self-service page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import auth_headers, create_customer
from tests.selfservice.helpers import csrf, sign_in
from vault.app import create_app
from vault.audit.models import AuditEvent
from vault.consent.models import ConsentEvent
from vault.customers import service as customers_service
from vault.runtime import Runtime


@pytest.fixture
def writer(session, runtime):
    return auth_headers(session, runtime, "consent:write", "customers:write")


@pytest.fixture
def cid(session, runtime):
    c = create_customer(session, runtime)
    session.rollback()
    return c.id


def _events(session, customer_id):
    rows = list(
        session.execute(
            select(ConsentEvent)
            .where(ConsentEvent.customer_id == customer_id)
            .order_by(ConsentEvent.seq)
        ).scalars()
    )
    session.rollback()
    return rows


def _write(client, headers, customer_id, **body):
    return client.post(
        f"/v1/customers/{customer_id}/consents",
        json={"purpose": "personalised_offers", "status": "granted", "channel": "store", **body},
        headers=headers,
    )


def _import(client, headers, *lines):
    r = client.post(
        "/v1/customers/import",
        content=b"".join(orjson.dumps(line) + b"\n" for line in lines),
        headers={**headers, "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def _import_line(n: int, **consent):
    return {
        "attributes": {"email": f"tuer{n}@example.de"},
        "consents": [{"purpose": "personalised_offers", "status": "granted", **consent}],
    }


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


# --- the evidence allowlist --------------------------------------------------------------------


@pytest.mark.parametrize("idempotency_key", [None, "door-1"])
def test_the_api_refuses_a_key_outside_the_allowlist_by_name(
    client, writer, cid, session, idempotency_key
):
    headers = {**writer, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
    r = _write(client, headers, cid, evidence={"cashier_name": "Erika Mustermann"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "evidence_key_not_allowed"
    assert r.json()["key"] == "cashier_name" and "Erika" not in r.text
    assert _events(session, cid) == []


def test_the_api_stores_typed_evidence_with_every_ip_truncated(client, writer, cid, session):
    evidence = {
        "ip_address": "203.0.113.77",
        "user_agent": "Kasse/7 (192.168.40.12)",
        "store_id": "koeln-02",
        "staff_id": "4711",
        "script_version": "2026.3",
    }
    r = _write(client, writer, cid, evidence=evidence)
    assert r.status_code == 201, r.text
    stored = {
        **evidence,
        "ip_address": "203.0.113.0/24",
        "user_agent": "Kasse/7 (192.168.40.0/24)",
    }
    assert r.json()["event"]["evidence"] == stored
    assert [e.evidence for e in _events(session, cid)] == [stored]


def test_the_import_refuses_a_key_outside_the_allowlist(client, writer, session, runtime):
    report = _import(
        client,
        writer,
        _import_line(1, evidence={"ip": "198.51.100.9", "gpc": True}),
        _import_line(2, evidence={"customer_email": "erika@example.de"}),
        _import_line(3, evidence={"gpc": "yes"}),
    )
    assert report["created"] == 1 and report["rejected"] == 2
    assert {e["line"]: e["error"] for e in report["errors"]} == {
        2: "evidence_key_not_allowed",
        3: "invalid_evidence",
    }
    assert "erika@example.de" not in orjson.dumps(report).decode()
    kw = {"session": session, "envelope": runtime.envelope, "policy": runtime.policy}
    first = customers_service.lookup(**kw, attribute="email", value="tuer1@example.de")
    assert [e.evidence for e in _events(session, first)] == [{"ip": "198.51.100.0/24", "gpc": True}]


def test_the_self_service_page_truncates_ips_in_the_agent_too(session, runtime, app, cid):
    ua = {"user-agent": "Kiosk/2 (terminal 10.20.30.40) TestBrowser/1.0"}
    with TestClient(app, client=("2001:db8:abcd:12::7", 50000), headers=ua) as client:
        sign_in(client, session, runtime, cid)
        r = client.post(
            "/me/consents/personalised_offers",
            data={"status": "granted", "csrf_token": csrf(client)},
        )
        assert r.status_code == 200, r.text
    (event,) = _events(session, cid)
    assert event.evidence.pop("session_origin").startswith("client:")  # the app that mailed it
    assert event.evidence == {
        "language": "de",
        "gpc": False,
        "user_agent": "Kiosk/2 (terminal 10.20.30.0/24) TestBrowser/1.0",
        "ip": "2001:db8:abcd::/48",
    }


# --- the backdating horizon --------------------------------------------------------------------


def test_the_api_needs_late_import_beyond_the_horizon(client, writer, cid, session):
    r = _write(client, writer, cid, occurred_at=_ago(31))
    assert r.status_code == 422 and r.json()["error"] == "occurred_at_too_old", r.text
    assert _events(session, cid) == []
    assert _write(client, writer, cid, occurred_at=_ago(29)).status_code == 201
    r = _write(client, writer, cid, occurred_at=_ago(400), late_import=True)
    assert r.status_code == 201, r.text
    assert r.json()["applied"] is False  # older than the decision of 29 days ago
    details = [
        orjson.loads(d)
        for d in session.execute(
            select(AuditEvent.details)
            .where(AuditEvent.action == "consent.recorded", AuditEvent.customer_id == cid)
            .order_by(AuditEvent.id)
        ).scalars()
    ]
    session.rollback()
    assert [d.get("late_import") for d in details] == [None, True]


def test_the_api_with_an_idempotency_key_keeps_the_flag_in_the_request(
    client, writer, cid, session
):
    headers, then = {**writer, "Idempotency-Key": "late-1"}, _ago(90)
    r = _write(client, headers, cid, occurred_at=then, late_import=True)
    assert r.status_code == 201, r.text
    again = _write(client, headers, cid, occurred_at=then, late_import=True)
    assert again.status_code == 201 and again.json()["event"]["id"] == r.json()["event"]["id"]
    # the same key without the flag is another request
    r = _write(client, headers, cid, occurred_at=then)
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    assert len(_events(session, cid)) == 1


def test_the_import_needs_late_import_beyond_the_horizon(client, writer, session):
    report = _import(
        client,
        writer,
        _import_line(1, occurred_at=_ago(31)),
        _import_line(2, occurred_at=_ago(3650), late_import=True),
        _import_line(3, occurred_at=_ago(1), late_import="yes"),
        _import_line(4, occurred_at=_ago(1)),
    )
    assert {e["line"]: e["error"] for e in report["errors"]} == {
        1: "occurred_at_too_old",
        3: "invalid_consent",
    }
    assert report["created"] == 2 and report["consents"] == 2
    flagged = session.execute(
        select(AuditEvent.details).where(
            AuditEvent.action == "customer.imported", AuditEvent.details.is_not(None)
        )
    ).scalars()
    assert [orjson.loads(d) for d in flagged] == [{"late_import": True}]
    session.rollback()


def test_the_horizon_is_a_setting(settings, session, runtime):
    rt = Runtime.build(settings.model_copy(update={"consent_backdate_days": 5}))
    try:
        customer = create_customer(session, rt)
        headers = auth_headers(session, rt, "consent:write")
        with TestClient(create_app(rt), raise_server_exceptions=False) as client:
            r = _write(client, headers, customer.id, occurred_at=_ago(6))
            assert r.status_code == 422 and r.json()["error"] == "occurred_at_too_old"
            assert "5 days" in r.json()["detail"]
            assert _write(client, headers, customer.id, occurred_at=_ago(4)).status_code == 201
    finally:
        rt.engine.dispose()
