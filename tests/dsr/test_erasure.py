"""Erasure by key destruction (Art. 17): the bytes are gone, the proof stays."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from tests.dsr.helpers import audit_actions, customer_with_data, dsr, outbox, read, reader
from tests.factories import auth_headers, create_customer, record_consent
from vault.audit.models import AuditEvent
from vault.consent import rebuild as consent_rebuild
from vault.customers.models import BlindIndex, Customer, CustomerValue
from vault.db import make_engine
from vault.dsr import erasure, rights
from vault.dsr.models import DataSubjectRequest
from vault.provenance import Caller


def _secrets(runtime, customer_id) -> list[bytes]:
    """The customer's wrapped key and every ciphertext, as stored."""
    with Session(runtime.engine) as s:
        c = s.get(Customer, customer_id)
        blobs = s.execute(
            select(CustomerValue.ciphertext).where(CustomerValue.customer_id == customer_id)
        ).scalars()
        out = [bytes(c.dek_wrapped), *(bytes(b) for b in blobs)]
    assert len(out) >= 4  # key + at least three values
    return out


def _sqlite_bytes(settings) -> bytes:
    path = Path(make_url(settings.resolved_database_url).database)
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def _pg_rows(db_url) -> str:
    """Every row of every table as PostgreSQL's text form (bytea as hex)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            parts = []
            for table in inspect(conn).get_table_names():
                rows = conn.execute(text(f'SELECT CAST(t AS text) FROM "{table}" t')).scalars()
                parts.extend(rows)
        return "\n".join(parts)
    finally:
        engine.dispose()


def test_erasure_leaves_no_values_and_no_key_in_the_database(
    client, session, runtime, settings, backend, db_url
):
    victim = customer_with_data(session, runtime)
    other = create_customer(session, runtime, email="other@example.de", first_name="Otto")
    record_consent(session, runtime, victim.id, "personalised_offers", "granted")
    secrets = _secrets(runtime, victim.id)
    kept = _secrets(runtime, other.id)
    staff = dsr(session, runtime)
    session.close()

    r = client.delete(f"/v1/customers/{victim.id}", headers=staff)
    assert r.status_code == 204, r.text

    runtime.engine.dispose()  # SQLite: the last connection checkpoints and removes the WAL
    if backend == "sqlite":
        raw = _sqlite_bytes(settings)
        for blob in secrets:
            assert blob not in raw
        for blob in kept:  # the check can fail: the other customer's bytes are all there
            assert blob in raw
        assert b"Mustermann" not in raw and b"Laktose" not in raw
    else:
        rows = _pg_rows(db_url)
        for blob in secrets:
            assert blob.hex() not in rows
        for blob in kept:
            assert blob.hex() in rows


def test_after_erasure_reads_and_export_answer_410_and_the_ledger_remains(client, session, runtime):
    customer = customer_with_data(session, runtime)
    granted_at = datetime.now(UTC) - timedelta(days=3)
    record_consent(
        session, runtime, customer.id, "personalised_offers", "granted", occurred_at=granted_at
    )
    staff = dsr(session, runtime)
    app = reader(session, runtime, "personalised_offers", "order_fulfilment")
    consent_reader = auth_headers(session, runtime, "consent:read")
    assert read(client, app, customer.id, "personalised_offers").status_code == 200

    assert client.delete(f"/v1/customers/{customer.id}", headers=staff).status_code == 204
    for purpose in ("personalised_offers", "order_fulfilment"):
        r = read(client, app, customer.id, purpose)
        assert r.status_code == 410 and r.json()["error"] == "customer_erased"
    r = client.get(f"/v1/customers/{customer.id}/export", headers=staff)
    assert r.status_code == 410 and r.json()["error"] == "customer_erased"
    r = client.delete(f"/v1/customers/{customer.id}", headers=staff)
    assert r.status_code == 410

    # the consent ledger is the proof: as of a moment before the erasure it still answers
    before = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = client.get(
        f"/v1/customers/{customer.id}/consents", params={"as_of": before}, headers=consent_reader
    )
    assert r.status_code == 200, r.text
    states = {p["purpose"]: p["status"] for p in r.json()["purposes"]}
    assert states["personalised_offers"] == "granted"
    assert (
        client.get(f"/v1/customers/{customer.id}/consents", headers=consent_reader).status_code
        == 410
    )
    after = datetime.now(UTC).isoformat()
    r = client.get(
        f"/v1/customers/{customer.id}/consents", params={"as_of": after}, headers=consent_reader
    )
    assert r.status_code == 410
    r = client.get(f"/v1/customers/{customer.id}/consents/history", headers=consent_reader)
    assert r.status_code == 200 and len(r.json()["events"]) == 1

    # the tombstone, the event for downstream tools, the audit event, the closed request
    with Session(runtime.engine) as s:
        c = s.get(Customer, customer.id)
        assert (c.status, c.dek_wrapped, c.kek_id) == ("erased", None, None)
        assert c.erased_at is not None and c.erased_by.startswith("client:cv_")
        assert (
            s.execute(select(BlindIndex).where(BlindIndex.customer_id == customer.id)).first()
            is None
        )
        req = s.execute(
            select(DataSubjectRequest).where(DataSubjectRequest.customer_id == customer.id)
        ).scalar_one()
        assert (req.kind, req.status, req.handled_by) == ("erasure", "completed", c.erased_by)
        # the projection is kept, so a rebuild check of the whole ledger still agrees
        report = consent_rebuild.rebuild(session=s, fix=False)
        assert report.events == 1 and report.differences == []
    (event,) = [e for e in outbox(runtime, customer.id) if e.type == "customer.erased"]
    assert event.data["customer_id"] == str(customer.id)
    assert "dsr.erasure" in audit_actions(runtime, customer.id)


def test_legal_hold_refuses_erasure_with_the_reason(client, session, runtime):
    customer = customer_with_data(session, runtime)
    staff = dsr(session, runtime)
    url = f"/v1/customers/{customer.id}/legal-hold"
    note = "Pending lawsuit about order ORD-77"
    r = client.post(url, json={"reason": "litigation", "note": note}, headers=staff)
    assert r.status_code == 200 and r.json()["legal_hold"] is True
    assert r.json()["legal_hold_reason"] == "litigation" and r.json()["legal_hold_note"] == note
    r = client.delete(f"/v1/customers/{customer.id}", headers=staff)
    assert r.status_code == 409
    assert r.json()["error"] == "legal_hold"
    assert r.json()["reason"] == "litigation" and note not in r.text  # the code, never the note
    app = reader(session, runtime, "order_fulfilment")
    assert read(client, app, customer.id, "order_fulfilment").status_code == 200

    # reasons are codes: free text is refused, and a release takes no note
    r = client.request("DELETE", url, json={"reason": "Lawsuit settled"}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = client.request(
        "DELETE", url, json={"reason": "litigation_concluded", "note": "x"}, headers=staff
    )
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = client.request("DELETE", url, json={"reason": "litigation_concluded"}, headers=staff)
    assert r.status_code == 200 and r.json()["legal_hold"] is False
    assert client.delete(f"/v1/customers/{customer.id}", headers=staff).status_code == 204
    actions = [a for a in audit_actions(runtime, customer.id) if a.startswith("dsr.")]
    assert actions == [
        "dsr.legal_hold_set",
        "dsr.erasure",  # the refusal, outcome denied, reason legal_hold
        "dsr.legal_hold_cleared",
        "dsr.erasure",
    ]
    outcomes = session.execute(
        select(AuditEvent.outcome, AuditEvent.reason).where(AuditEvent.action == "dsr.erasure")
    ).all()
    session.rollback()
    assert [tuple(o) for o in outcomes] == [("denied", "legal_hold"), ("success", None)]


def test_erasure_closes_an_open_tracked_request(client, session, runtime):
    customer = customer_with_data(session, runtime)
    staff = dsr(session, runtime)
    r = client.post(
        "/v1/dsr/requests", json={"customer_id": str(customer.id), "kind": "erasure"}, headers=staff
    )
    assert r.status_code == 201
    assert client.delete(f"/v1/customers/{customer.id}", headers=staff).status_code == 204
    r = client.get(f"/v1/dsr/requests/{r.json()['id']}", headers=staff)
    assert r.json()["status"] == "completed" and r.json()["handled_by"].startswith("client:")
    r = client.get("/v1/dsr/requests", params={"customer_id": str(customer.id)}, headers=staff)
    assert len(r.json()["requests"]) == 1  # closed, not duplicated


def test_erase_many_skips_what_it_must_not_erase(session, runtime):
    ids = [create_customer(session, runtime).id for _ in range(5)]
    held, gone = ids[0], ids[1]
    rights.set_legal_hold(
        session=session,
        envelope=runtime.envelope,
        customer_id=held,
        reason="tax_retention",
        by=Caller("cli"),
    )
    notary = erasure.Notary.of(runtime)
    erasure.erase(session=session, customer_id=gone, by=Caller("cli"), notary=notary)
    session.commit()
    unknown = Customer().id
    result = erasure.erase_many(
        session=session, customer_ids=[*ids, unknown], by=Caller("cli"), notary=notary
    )
    session.commit()
    assert result.erased == ids[2:]
    assert result.legal_hold == [held] and result.already_erased == [gone]
    assert result.not_found == [unknown]
    statuses = dict(session.execute(select(Customer.id, Customer.status)).all())
    session.rollback()
    assert [statuses[i] for i in ids] == ["active", "erased", "erased", "erased", "erased"]
    remaining = session.execute(select(CustomerValue.customer_id).distinct()).scalars().all()
    session.rollback()
    assert remaining == [held]
    assert len([e for e in outbox(runtime, ids[3]) if e.type == "customer.erased"]) == 1


def test_erasure_deletes_confirmation_tokens_and_idempotency_answers(client, session, runtime):
    customer = customer_with_data(session, runtime)
    writer = auth_headers(session, runtime, "consent:write", "consent:confirm")
    confirmer = auth_headers(session, runtime, "consent:confirm")
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers={**writer, "Idempotency-Key": "k-1"},
    )
    assert r.status_code == 201 and r.json()["confirmation_token"]
    token = r.json()["confirmation_token"]
    staff = dsr(session, runtime)
    assert client.delete(f"/v1/customers/{customer.id}", headers=staff).status_code == 204
    counts = [
        session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
        for t in ("consent_confirmation", "consent_idempotency", "consent_event")
    ]
    session.rollback()
    assert counts == [0, 0, 1]
    r = client.post("/v1/consents/confirm", json={"token": token}, headers=confirmer)
    assert r.status_code == 404
