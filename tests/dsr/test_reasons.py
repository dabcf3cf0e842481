"""Coded reasons: legal hold, restriction, extension and closing reasons are codes, which may go
anywhere (rows that outlive erasure, the audit log, error bodies); free text goes into a note
sealed under the customer's key, shown while the customer exists and gone with the erasure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from tests.dsr.helpers import customer_with_data, dsr
from tests.dsr.test_erasure import _pg_rows, _sqlite_bytes
from vault.audit.models import AuditEvent
from vault.customers.models import Customer
from vault.db import downgrade, make_engine, upgrade
from vault.dsr import notes
from vault.dsr.models import DataSubjectRequest
from vault.errors import DecryptionError

HOLD_NOTE = "Klage Az. 3 O 117/26, Erika Mustermann gegen Tante Emma"
EXTENSION_NOTE = "Archivsuche im Lager Köln für Frau Mustermann"
CLOSE_NOTE = "Ausweis von Erika Mustermann fehlt"
RESTRICTION_NOTE = "Frau Mustermann bestreitet die Anschrift"
NOTES = (HOLD_NOTE, EXTENSION_NOTE, CLOSE_NOTE, RESTRICTION_NOTE)


@pytest.fixture
def staff(session, runtime):
    return dsr(session, runtime)


@pytest.fixture
def customer(session, runtime):
    c = customer_with_data(session, runtime)
    session.rollback()
    return c


def _request(client, staff, cid, kind="access"):
    r = client.post("/v1/dsr/requests", json={"customer_id": str(cid), "kind": kind}, headers=staff)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _customer_row(session, cid) -> Customer:
    session.expire_all()
    row = session.get(Customer, cid)
    session.rollback()
    return row


def _audit_text(runtime, cid) -> str:
    with Session(runtime.engine) as s:
        rows = s.execute(
            select(AuditEvent.reason, AuditEvent.details).where(AuditEvent.customer_id == cid)
        ).all()
    return repr(rows)


def _noted_everything(client, staff, cid) -> tuple[str, str]:
    """A legal hold (set and cleared again), a restriction, an extended and a rejected request,
    each with a note; returns the two requests' ids."""
    url = f"/v1/customers/{cid}"
    r = client.post(
        f"{url}/legal-hold", json={"reason": "litigation", "note": HOLD_NOTE}, headers=staff
    )
    assert r.status_code == 200, r.text
    r = client.post(
        f"{url}/restriction",
        json={"reason": "accuracy_contested", "note": RESTRICTION_NOTE},
        headers=staff,
    )
    assert r.status_code == 200, r.text
    extended, rejected = _request(client, staff, cid), _request(client, staff, cid, "erasure")
    r = client.post(
        f"/v1/dsr/requests/{extended}/extension",
        json={"months": 1, "reason": "complexity", "note": EXTENSION_NOTE},
        headers=staff,
    )
    assert r.status_code == 200, r.text
    r = client.post(
        f"/v1/dsr/requests/{rejected}/close",
        json={"status": "rejected", "reason": "identity_not_verified", "note": CLOSE_NOTE},
        headers=staff,
    )
    assert r.status_code == 200, r.text
    return extended, rejected


def test_a_legal_hold_is_a_code_with_a_sealed_note(client, session, runtime, staff, customer):
    url = f"/v1/customers/{customer.id}/legal-hold"
    r = client.post(url, json={"reason": "tax_retention", "note": HOLD_NOTE}, headers=staff)
    assert r.status_code == 200, r.text
    assert r.json()["legal_hold_reason"] == "tax_retention"
    assert r.json()["legal_hold_note"] == HOLD_NOTE
    row = _customer_row(session, customer.id)
    assert row.legal_hold_reason == "tax_retention"
    assert row.legal_hold_note is not None and HOLD_NOTE.encode() not in row.legal_hold_note
    # the refused erasure names the code, never the note
    r = client.delete(f"/v1/customers/{customer.id}", headers=staff)
    assert r.status_code == 409 and r.json()["reason"] == "tax_retention"
    assert "Mustermann" not in r.text
    # the export (Art. 15) shows both to the customer
    doc = client.get(f"/v1/customers/{customer.id}/export", headers=staff).json()
    assert doc["customer"]["legal_hold_reason"] == "tax_retention"
    assert doc["customer"]["legal_hold_note"] == HOLD_NOTE
    # released: the code of the release is audited, the hold's note goes
    r = client.request("DELETE", url, json={"reason": "retention_period_ended"}, headers=staff)
    assert r.status_code == 200, r.text
    assert r.json()["legal_hold_reason"] is None and r.json()["legal_hold_note"] is None
    assert _customer_row(session, customer.id).legal_hold_note is None
    audit = _audit_text(runtime, customer.id)
    assert "tax_retention" in audit and "retention_period_ended" in audit
    assert "Mustermann" not in audit


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/legal-hold", {"reason": "Klage von Frau Mustermann"}),
        ("/legal-hold", {"reason": "litigation", "note": "x" * 1001}),
        ("/legal-hold", {"reason": "litigation", "note": "a\x00b"}),
        ("/restriction", {"reason": "because"}),
    ],
)
def test_free_text_where_a_code_belongs_is_422(client, staff, customer, path, body):
    r = client.post(f"/v1/customers/{customer.id}{path}", json=body, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "validation_error", r.text
    assert "Mustermann" not in r.text


def test_requests_carry_codes_and_notes(client, session, runtime, staff, customer):
    extended, rejected = _noted_everything(client, staff, customer.id)
    got = client.get(f"/v1/dsr/requests/{extended}", headers=staff).json()
    assert (got["extension_reason"], got["extension_note"]) == ("complexity", EXTENSION_NOTE)
    listed = {
        r["id"]: r
        for r in client.get(
            "/v1/dsr/requests", params={"customer_id": str(customer.id)}, headers=staff
        ).json()["requests"]
    }
    assert listed[rejected]["close_reason"] == "identity_not_verified"
    assert listed[rejected]["close_note"] == CLOSE_NOTE
    doc = client.get(f"/v1/customers/{customer.id}/export", headers=staff).json()
    exported = {r["id"]: r for r in doc["requests"]}
    assert exported[extended]["extension_note"] == EXTENSION_NOTE
    assert doc["customer"]["restriction_reason"] == "accuracy_contested"
    assert doc["customer"]["restriction_note"] == RESTRICTION_NOTE
    # stored sealed; the audit log has the codes only
    rows = session.execute(select(DataSubjectRequest)).scalars().all()
    session.rollback()
    stored = b"".join((r.extension_note or b"") + (r.close_note or b"") for r in rows)
    assert stored and EXTENSION_NOTE.encode() not in stored and CLOSE_NOTE.encode() not in stored
    audit = _audit_text(runtime, customer.id)
    assert "complexity" in audit and "identity_not_verified" in audit
    assert "accuracy_contested" in audit and "Mustermann" not in audit


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"status": "rejected"}, 422, "rejection_reason_required"),
        ({"status": "rejected", "reason": "fulfilled"}, 422, "invalid_close_reason"),
        ({"status": "completed", "reason": "excessive"}, 422, "invalid_close_reason"),
        ({"status": "rejected", "reason": "Zu viele Anfragen"}, 422, "validation_error"),
        ({"status": "rejected", "reason": "excessive"}, 200, None),
        ({"status": "completed", "reason": "no_data_held"}, 200, None),
        ({"status": "completed"}, 200, None),
    ],
)
def test_a_close_reason_fits_the_status(client, staff, customer, body, status, code):
    rid = _request(client, staff, customer.id)
    r = client.post(f"/v1/dsr/requests/{rid}/close", json=body, headers=staff)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"] == code
    else:
        assert r.json()["close_reason"] == body.get("reason")


def test_an_extension_takes_only_the_grounds_of_art_12_3(client, staff, customer):
    rid = _request(client, staff, customer.id)
    url = f"/v1/dsr/requests/{rid}/extension"
    r = client.post(url, json={"months": 1, "reason": "other"}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = client.post(url, json={"months": 1, "note": "viel Arbeit"}, headers=staff)
    assert r.status_code == 422 and r.json()["error"] == "extension_reason_required"


def test_a_restriction_ground_is_replaced_and_lifted(client, runtime, staff, customer):
    url = f"/v1/customers/{customer.id}/restriction"
    r = client.post(url, headers=staff)  # no body: still a restriction, no ground
    assert r.status_code == 200 and r.json()["status"] == "restricted"
    assert r.json()["restriction_reason"] is None
    r = client.post(
        url, json={"reason": "objection_pending", "note": RESTRICTION_NOTE}, headers=staff
    )
    assert r.json()["restriction_reason"] == "objection_pending"
    assert r.json()["restriction_note"] == RESTRICTION_NOTE
    r = client.delete(url, headers=staff)
    assert r.json()["status"] == "active" and r.json()["restriction_reason"] is None
    assert r.json()["restriction_note"] is None
    assert "objection_pending" in _audit_text(runtime, customer.id)


def test_after_erasure_requests_keep_only_their_codes(
    client, session, runtime, settings, backend, db_url, staff, customer
):
    extended, rejected = _noted_everything(client, staff, customer.id)
    url = f"/v1/customers/{customer.id}"
    r = client.request(
        "DELETE", f"{url}/legal-hold", json={"reason": "set_in_error"}, headers=staff
    )
    assert r.status_code == 200
    still_open = _request(client, staff, customer.id, "rectification")
    with Session(runtime.engine) as s:
        sealed = [
            blob
            for r in s.execute(select(DataSubjectRequest)).scalars()
            for blob in (r.extension_note, r.close_note)
            if blob
        ] + [s.get(Customer, customer.id).restriction_note]
    assert len(sealed) == 3

    assert client.delete(url, headers=staff).status_code == 204

    got = client.get(f"/v1/dsr/requests/{extended}", headers=staff).json()
    assert (got["extension_reason"], got["extension_note"]) == ("complexity", None)
    got = client.get(f"/v1/dsr/requests/{rejected}", headers=staff).json()
    assert (got["close_reason"], got["close_note"]) == ("identity_not_verified", None)
    with Session(runtime.engine) as s:
        rows = s.execute(
            select(DataSubjectRequest).where(DataSubjectRequest.customer_id == customer.id)
        ).scalars()
        assert all(r.extension_note is None and r.close_note is None for r in rows)
        tomb = s.get(Customer, customer.id)
        assert tomb.restriction_reason == "accuracy_contested" and tomb.restriction_note is None
    # an erased customer's open request is closed with a code; a note has nowhere to go
    close = f"/v1/dsr/requests/{still_open}/close"
    r = client.post(close, json={"status": "completed", "note": "erledigt"}, headers=staff)
    assert r.status_code == 410 and r.json()["error"] == "customer_erased"
    r = client.post(close, json={"status": "completed", "reason": "fulfilled"}, headers=staff)
    assert r.status_code == 200 and r.json()["close_note"] is None

    # nothing of a note is left in the database: no plaintext, no ciphertext
    runtime.engine.dispose()
    if backend == "sqlite":
        raw = _sqlite_bytes(settings)
        assert all(n.encode() not in raw for n in NOTES)
        assert all(blob not in raw for blob in sealed)
        assert b"identity_not_verified" in raw  # the codes stay: the scan sees the rows
    else:
        rows = _pg_rows(db_url)
        assert all(n not in rows for n in NOTES)
        assert all(blob.hex() not in rows for blob in sealed)
        assert "identity_not_verified" in rows


def test_a_note_does_not_open_under_another_record(session, runtime, customer):
    row = _customer_row(session, customer.id)
    blob = notes.seal(runtime.envelope, row, notes.extension_label(customer.id), "Notiz")
    reader = notes.NoteReader(session, runtime.envelope)
    assert reader.open(customer.id, notes.extension_label(customer.id), blob) == "Notiz"
    with pytest.raises(DecryptionError):
        reader.open(customer.id, notes.close_label(customer.id), blob)


def test_the_migration_turns_free_text_into_other(db_url):
    """0010: every free-text reason becomes ``other`` (blank ones none), the text is gone."""
    downgrade(db_url, "0009")
    engine = make_engine(db_url)
    now = datetime(2026, 11, 1, tzinfo=UTC).replace(tzinfo=None)
    try:
        with engine.begin() as conn:
            for n, reason in enumerate(["Klage von Frau Mustermann", "   ", None], start=1):
                cid = f"{n:032x}"
                conn.execute(
                    text(
                        "INSERT INTO customer (id, status, created_at, updated_at, objections, "
                        "legal_hold, legal_hold_reason) VALUES (:id, 'active', :t, :t, '', "
                        ":hold, :reason)"
                    ),
                    {"id": cid, "t": now, "hold": reason is not None, "reason": reason},
                )
                conn.execute(
                    text(
                        "INSERT INTO dsr_request (id, customer_id, kind, status, received_at, "
                        "due_at, extension_months, extension_reason, created_by, close_reason, "
                        "created_at) VALUES (:id, :cid, 'access', 'open', :t, :t, 0, :reason, "
                        "'cli', :reason, :t)"
                    ),
                    {"id": f"{n + 10:032x}", "cid": cid, "t": now, "reason": reason},
                )
        upgrade(db_url)
        with engine.connect() as conn:
            holds = conn.execute(
                text("SELECT legal_hold_reason FROM customer ORDER BY id")
            ).scalars()
            requests = conn.execute(
                text("SELECT extension_reason, close_reason FROM dsr_request ORDER BY id")
            ).all()
        assert list(holds) == ["other", None, None]
        assert [tuple(r) for r in requests] == [("other", "other"), (None, None), (None, None)]
    finally:
        engine.dispose()
