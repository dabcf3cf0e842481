"""The auditor's API: scopes, filters, pagination, streamed exports, verification, JWKS."""

import csv
import io
import json
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import func, select, text
from sqlmodel import Session

from tests.audit.helpers import seal, tamper, write
from tests.factories import auth_headers
from vault.audit import chain
from vault.audit import record as audit_record
from vault.audit.models import AuditCheckpoint, AuditEvent
from vault.db import utcnow
from vault.provenance import Caller


@pytest.fixture
def auditor(session, runtime):
    return auth_headers(session, runtime, "audit:read")


@pytest.mark.parametrize("path", ["/v1/audit/events", "/v1/audit/verify"])
def test_audit_routes_need_token_and_scope(client, session, runtime, path):
    r = client.get(path)
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    data_client = auth_headers(
        session, runtime, "data:read", "customers:write", purposes=["newsletter"]
    )
    r = client.get(path, headers=data_client)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def test_auditor_cannot_read_customer_data(client, auditor):
    r = client.post(
        "/v1/customers/lookup", json={"attribute": "email", "value": "a@b.de"}, headers=auditor
    )
    assert r.status_code == 403
    r = client.post("/v1/customers", json={"attributes": {}}, headers=auditor)
    assert r.status_code == 403


SEEDED_ACTORS = {"client:cv_news", "staff:42"}


def _seed(runtime):
    cid = uuid.uuid4()
    with Session(runtime.engine) as s:
        for i in range(7):
            audit_record.record(
                session=s,
                by=Caller("client:cv_news" if i % 2 else "staff:42", f"r{i}"),
                action="data.read" if i < 5 else "consent.recorded",
                outcome="denied" if i == 3 else "allowed",
                customer_id=cid if i < 4 else None,
                purpose="newsletter" if i < 6 else "analytics",
                attributes=["email"],
                reason="no_consent" if i == 3 else None,
                details={"i": i},
            )
        s.commit()
    return cid


def _events(client, auditor, **params):
    r = client.get("/v1/audit/events", params=params, headers=auditor)
    assert r.status_code == 200, r.text
    body = r.json()
    # Other events are in the log too (client registrations, the auditor's own audit.read
    # events of earlier calls): keep the seeded ones.
    body["events"] = [e for e in body["events"] if e["actor"] in SEEDED_ACTORS]
    return body


def test_list_events_filters(client, runtime, auditor):
    cid = _seed(runtime)
    everything = _events(client, auditor)["events"]
    assert [e["request_id"] for e in everything] == [f"r{i}" for i in range(7)]
    first = everything[0]
    assert first["actor"] == "staff:42" and first["attributes"] == ["email"]
    assert first["details"] == {"i": 0} and first["outcome"] == "allowed"

    def ids(**p):
        return [e["request_id"] for e in _events(client, auditor, **p)["events"]]

    assert ids(customer_id=str(cid)) == ["r0", "r1", "r2", "r3"]
    assert ids(actor="client:cv_news") == ["r1", "r3", "r5"]
    assert ids(actor="staff") == ["r0", "r2", "r4", "r6"]
    assert ids(purpose="analytics") == ["r6"]
    assert ids(action="consent.recorded") == ["r5", "r6"]
    assert ids(action="data.*") == ["r0", "r1", "r2", "r3", "r4"]
    assert ids(outcome="denied") == ["r3"]
    denied = _events(client, auditor, outcome="denied")["events"][0]
    assert denied["reason"] == "no_consent"
    future = (utcnow() + timedelta(minutes=5)).isoformat()
    past = (utcnow() - timedelta(minutes=5)).isoformat()
    assert ids(since=future) == [] and len(ids(since=past, action="data.read")) == 5
    assert ids(until=past, action="data.read") == []


def test_list_events_rejects_bad_filters(client, auditor):
    for params in ({"actor": "a@b.de"}, {"outcome": "maybe"}, {"limit": 0}, {"limit": 5000}):
        r = client.get("/v1/audit/events", params=params, headers=auditor)
        assert r.status_code == 422, params
    r = client.get("/v1/audit/events", params={"cursor": "bm9wZQ"}, headers=auditor)
    assert r.status_code == 422 and r.json()["error"] == "invalid_cursor"


def test_cursor_pagination_walks_everything_once(client, runtime, auditor):
    write(runtime, 23)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10, "action": "data.read"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/audit/events", params=params, headers=auditor).json()
        seen += [e["request_id"] for e in page["events"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == [f"req{i}" for i in range(23)]


def test_ndjson_and_csv_stream_the_whole_selection(client, runtime, auditor):
    write(runtime, 12_000)
    seal(runtime)
    r = client.get(
        "/v1/audit/events",
        params={"action": "data.read"},
        headers={**auditor, "Accept": "application/x-ndjson"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    seqs = [e["seq"] for e in lines]
    assert len(lines) == 12_000 and seqs == list(range(seqs[0], seqs[0] + 12_000))
    r = client.get(
        "/v1/audit/events",
        params={"action": "data.read"},
        headers={**auditor, "Accept": "text/csv"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 12_000 and rows[-1]["seq"] == str(seqs[-1])
    assert rows[0]["attributes"] == "email first_name" and json.loads(rows[0]["details"]) == {
        "i": 0
    }


def test_reading_the_log_is_audited(client, runtime, session, auditor):
    cid = uuid.uuid4()
    _events(client, auditor, customer_id=str(cid))
    client.get("/v1/audit/events", headers={**auditor, "Accept": "text/csv"})
    client.get("/v1/audit/verify", headers=auditor)
    reads = (
        session.execute(
            select(AuditEvent).where(AuditEvent.action == "audit.read").order_by(AuditEvent.id)
        )
        .scalars()
        .all()
    )
    session.rollback()
    assert [json.loads(e.details)["format"] for e in reads] == ["json", "csv", "verify"]
    assert all(e.actor_type == "client" and e.actor_id.startswith("cv_") for e in reads)
    assert reads[0].customer_id == cid and json.loads(reads[0].details)["filters"] == [
        "customer_id"
    ]


def test_verify_route_seals_then_verifies(client, runtime, auditor):
    write(runtime, 30)
    r = client.get("/v1/audit/verify", headers=auditor)
    assert r.status_code == 200
    with Session(runtime.engine) as s:
        total = s.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
        unchained = s.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
        ).scalar_one()
        top = s.execute(select(func.max(AuditCheckpoint.seq))).scalar_one()
    # the 30 events, the audit.read event of this very call and whatever else was logged
    assert total >= 31 and unchained == 0 and top == total
    assert r.json() == {"ok": True, "checked": total, "first_invalid_seq": None}


def test_verify_route_names_the_first_bad_seq(client, runtime, auditor):
    write(runtime, 10)
    seal(runtime)
    with tamper(runtime) as conn:
        conn.execute(text("UPDATE audit_event SET outcome = 'denied' WHERE seq = 4"))
    r = client.get("/v1/audit/verify", headers=auditor)
    assert r.status_code == 200
    assert r.json() == {"ok": False, "checked": 3, "first_invalid_seq": 4}


def test_jwks_publishes_the_checkpoint_key(client, runtime):
    write(runtime, 3)
    seal(runtime)
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    okp = [k for k in keys if k["kty"] == "OKP"]
    assert len(keys) >= 2 and len(okp) == 1
    jwk = okp[0]
    assert (jwk["crv"], jwk["alg"], jwk["kid"]) == ("Ed25519", "EdDSA", runtime.keys.audit_kid)
    raw = chain.base64.urlsafe_b64decode(jwk["x"] + "==")
    pub = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    with Session(runtime.engine) as s:
        cp = s.execute(select(AuditCheckpoint)).scalars().one()
    assert chain.checkpoint_valid(pub, cp.seq, cp.hash, cp.signed_at, cp.signature)
    assert not chain.checkpoint_valid(pub, cp.seq + 1, cp.hash, cp.signed_at, cp.signature)
