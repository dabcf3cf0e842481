import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
from fastapi.testclient import TestClient
from joserfc import jws as rfc_jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from sqlalchemy import func, select, text

from tests.factories import auth_headers, create_customer
from vault.app import create_app
from vault.consent.models import ConsentEvent

CID = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def writer(session, runtime):
    return auth_headers(session, runtime, "consent:write", "consent:read")


@pytest.fixture
def own_mailer(session, runtime):
    """An app that sends its own double opt-in mail: it gets the token back."""
    return auth_headers(session, runtime, "consent:write", "consent:read", "consent:confirm")


@pytest.fixture
def confirmer(session, runtime):
    """The app's confirmation endpoint: a second client that confirms what the customer
    answered (never the client that recorded the grant)."""
    return auth_headers(session, runtime, "consent:confirm", "consent:read")


@pytest.fixture
def customer(session, runtime):
    c = create_customer(session, runtime)
    session.rollback()
    return c


def _event_count(session, customer_id=None):
    stmt = select(func.count()).select_from(ConsentEvent)
    if customer_id is not None:
        stmt = stmt.where(ConsentEvent.customer_id == customer_id)
    n = session.execute(stmt).scalar_one()
    session.rollback()
    return n


def _grant(client, headers, customer_id, purpose="personalised_offers", **body):
    return client.post(
        f"/v1/customers/{customer_id}/consents",
        json={"purpose": purpose, "status": "granted", "channel": "web", **body},
        headers=headers,
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"),
    [
        ("post", f"/v1/customers/{CID}/consents", {"purpose": "x", "status": "granted",
                                                    "channel": "web"}, "consent:write"),
        ("post", "/v1/consents/confirm", {"token": "x" * 43}, "consent:confirm"),
        ("get", f"/v1/customers/{CID}/consents", None, "consent:read"),
        ("get", f"/v1/customers/{CID}/consents/history", None, "consent:read"),
    ],
)  # fmt: skip
def test_consent_routes_need_token_and_scope(client, session, runtime, method, path, body, scope):
    r = client.request(method, path, json=body)
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    wrong = auth_headers(
        session, runtime, "data:read" if scope == "consent:write" else "consent:write"
    )
    r = client.request(method, path, json=body, headers=wrong)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def test_grant_then_read_then_history(client, writer, customer):
    r = _grant(client, writer, customer.id, evidence={"ip": "203.0.113.9", "user_agent": "Firefox"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {
        "event",
        "state",
        "receipt",
        "applied",
        "confirmation_token",
        "confirmation_delivery",
    }
    assert body["applied"] is True and body["confirmation_token"] is None
    assert body["state"]["status"] == "granted" and body["state"]["version"] == 1
    assert body["event"]["evidence"] == {"ip": "203.0.113.0/24", "user_agent": "Firefox"}
    assert body["event"]["recorded_by"].startswith("client:cv_")

    r = client.get(f"/v1/customers/{customer.id}/consents", headers=writer)
    assert r.status_code == 200
    doc = r.json()
    assert set(doc) == {"customer_id", "purposes"} and doc["customer_id"] == str(customer.id)
    by_id = {p["purpose"]: p for p in doc["purposes"]}
    assert set(by_id["personalised_offers"]) == {
        "purpose",
        "status",
        "version",
        "updated_at",
        "expires_at",
    }
    assert by_id["personalised_offers"]["status"] == "granted"
    granted = datetime.fromisoformat(by_id["personalised_offers"]["updated_at"])
    expires = datetime.fromisoformat(by_id["personalised_offers"]["expires_at"])
    assert expires - granted == timedelta(days=365)
    assert by_id["newsletter"]["status"] == "none" and by_id["newsletter"]["expires_at"] is None
    assert "order_fulfilment" not in by_id and "analytics" not in by_id

    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "personalised_offers", "status": "withdrawn", "channel": "call_center",
              "actor": "staff:4711", "method": "verbal"},
        headers=writer,
    )  # fmt: skip
    assert r.status_code == 201 and r.json()["state"]["status"] == "withdrawn"
    r = client.get(f"/v1/customers/{customer.id}/consents/history", headers=writer)
    events = r.json()["events"]
    assert [e["status"] for e in events] == ["granted", "withdrawn"]
    assert events[1]["actor"] == "staff:4711" and events[1]["channel"] == "call_center"
    assert all(e["receipt"].count(".") == 2 for e in events)


def test_as_of_through_the_api(client, writer, customer):
    now = datetime.now(UTC)
    t1, t2 = now - timedelta(days=3), now - timedelta(days=1)
    assert _grant(client, writer, customer.id, occurred_at=t1.isoformat()).status_code == 201
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "personalised_offers", "status": "withdrawn", "channel": "app",
              "occurred_at": t2.isoformat()},
        headers=writer,
    )  # fmt: skip
    assert r.status_code == 201

    def status_at(instant):
        r = client.get(
            f"/v1/customers/{customer.id}/consents",
            params={"as_of": instant.isoformat()},
            headers=writer,
        )
        assert r.status_code == 200, r.text
        return {p["purpose"]: p["status"] for p in r.json()["purposes"]}["personalised_offers"]

    assert status_at(t1 - timedelta(seconds=1)) == "none"
    assert status_at(t1 + timedelta(days=1)) == "granted"
    assert status_at(t2) == "withdrawn"
    r = client.get(
        f"/v1/customers/{customer.id}/consents",
        params={"as_of": (now + timedelta(hours=1)).isoformat()},
        headers=writer,
    )
    assert r.status_code == 422 and r.json()["error"] == "as_of_in_future"
    r = client.get(
        f"/v1/customers/{customer.id}/consents",
        params={"as_of": "2026-01-01T00:00:00"},
        headers=writer,
    )
    assert r.status_code == 422  # no time zone: ambiguous


@pytest.mark.parametrize("number", [b"1180591620717411303424", b"-9223372036854775809", b"NaN"])
@pytest.mark.parametrize("key", [None, "retry-1"])
def test_evidence_numbers_json_cannot_carry_are_422(client, writer, customer, session, number, key):
    """Found by fuzzing: an integer beyond 64 bits in evidence crashed the request hash of an
    Idempotency-Key write (and the receipt without one) with a 500."""
    body = b'{"purpose": "personalised_offers", "status": "granted", "channel": "web", '
    body += b'"evidence": {"gpc": ' + number + b"}}"
    headers = {**writer, "content-type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    r = client.post(f"/v1/customers/{customer.id}/consents", content=body, headers=headers)
    assert r.status_code == 422 and r.json()["error"] == "invalid_evidence", r.text
    assert _event_count(session) == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"purpose": "order_fulfilment"}, "purpose_not_consent_based"),
        ({"purpose": "tax_records"}, "purpose_not_consent_based"),
        ({"purpose": "horoscope"}, "unknown_purpose"),
        ({"status": "maybe"}, "invalid_consent_status"),
        ({"status": "confirmed"}, "invalid_consent_status"),
        ({"channel": "pigeon"}, "validation_error"),
        ({"evidence": {"email": "erika@example.de"}}, "evidence_key_not_allowed"),
        ({"evidence": {"ref": "erika@example.de"}}, "evidence_key_not_allowed"),
        ({"evidence": {"user_agent": "erika@example.de"}}, "evidence_contains_contact_data"),
        ({"evidence": {"gpc": 2**64}}, "invalid_evidence"),
        ({"occurred_at": "2026-01-01T00:00:00"}, "validation_error"),
        ({"actor": "somebody"}, "validation_error"),
    ],
)
def test_invalid_writes_are_refused_with_a_code(client, writer, customer, session, body, code):
    payload = {"purpose": "personalised_offers", "status": "granted", "channel": "web", **body}
    r = client.post(f"/v1/customers/{customer.id}/consents", json=payload, headers=writer)
    assert r.status_code == 422 and r.json()["error"] == code, r.text
    assert "erika@example.de" not in r.text
    assert _event_count(session) == 0


def test_future_occurred_at_is_refused(client, writer, customer, session):
    future = datetime.now(UTC) + timedelta(minutes=3)
    r = _grant(client, writer, customer.id, occurred_at=future.isoformat())
    assert r.status_code == 422 and r.json()["error"] == "occurred_at_in_future"
    assert _event_count(session) == 0


def test_unknown_and_erased_customers(client, writer, customer, session):
    r = _grant(client, writer, CID)
    assert r.status_code == 404 and r.json()["error"] == "customer_not_found"
    r = client.get(f"/v1/customers/{CID}/consents/history", headers=writer)
    assert r.status_code == 404
    _grant(client, writer, customer.id)
    session.execute(
        text("UPDATE customer SET status = 'erased', dek_wrapped = NULL WHERE id = :id"),
        {"id": customer.id.hex if session.get_bind().dialect.name == "sqlite" else customer.id},
    )
    session.commit()
    assert _grant(client, writer, customer.id).status_code == 410
    assert client.get(f"/v1/customers/{customer.id}/consents", headers=writer).status_code == 410
    r = client.get(f"/v1/customers/{customer.id}/consents/history", headers=writer)
    assert r.status_code == 200 and len(r.json()["events"]) == 1  # proof survives erasure


def test_double_opt_in_through_the_api(client, writer, own_mailer, confirmer, customer, session):
    # a client without consent:confirm: the vault mails the token, the answer holds none
    r = _grant(client, writer, customer.id, purpose="newsletter")
    assert r.status_code == 201
    assert r.json()["confirmation_token"] is None and r.json()["confirmation_delivery"] == "mail"
    r = _grant(client, own_mailer, customer.id, purpose="newsletter")
    assert r.status_code == 201
    body = r.json()
    token = body["confirmation_token"]
    assert token and body["state"]["status"] == "pending_confirmation"
    assert body["event"]["status"] == "pending_confirmation"
    assert body["confirmation_delivery"] == "caller"
    stored = session.execute(text("SELECT token_hash FROM consent_confirmation")).scalars().all()
    session.rollback()
    assert len(stored) == 2 and all(token not in h for h in stored)

    r = client.post("/v1/consents/confirm", json={"token": token}, headers=own_mailer)
    assert r.status_code == 403 and r.json()["error"] == "confirmation_by_recorder"
    r = client.post("/v1/consents/confirm", json={"token": token}, headers=confirmer)
    assert r.status_code == 200, r.text
    assert r.json()["state"]["status"] == "granted" and r.json()["event"]["status"] == "confirmed"
    r = client.get(f"/v1/customers/{customer.id}/consents", headers=writer)
    assert {p["purpose"]: p["status"] for p in r.json()["purposes"]}["newsletter"] == "granted"

    r = client.post("/v1/consents/confirm", json={"token": token}, headers=confirmer)
    assert r.status_code == 409 and r.json()["error"] == "confirmation_token_used"
    r = client.post("/v1/consents/confirm", json={"token": "y" * 43}, headers=confirmer)
    assert r.status_code == 404 and r.json()["error"] == "confirmation_token_not_found"
    assert _event_count(session, customer.id) == 3


def test_expired_confirmation_token(client, own_mailer, confirmer, customer, session):
    token = _grant(client, own_mailer, customer.id, purpose="newsletter").json()[
        "confirmation_token"
    ]
    session.execute(
        text("UPDATE consent_confirmation SET expires_at = :t"),
        {"t": datetime(2020, 1, 1) if session.get_bind().dialect.name == "sqlite"
         else datetime(2020, 1, 1, tzinfo=UTC)},
    )  # fmt: skip
    session.commit()
    r = client.post("/v1/consents/confirm", json={"token": token}, headers=confirmer)
    assert r.status_code == 410 and r.json()["error"] == "confirmation_token_expired"
    r = client.get(f"/v1/customers/{customer.id}/consents", headers=own_mailer)
    newsletter = {p["purpose"]: p["status"] for p in r.json()["purposes"]}["newsletter"]
    assert newsletter == "pending_confirmation"


def test_idempotency_key_replays_the_first_answer(client, own_mailer, customer, session):
    headers = {**own_mailer, "Idempotency-Key": "order-4711-optin"}
    first = _grant(client, headers, customer.id, purpose="newsletter")
    again = _grant(client, headers, customer.id, purpose="newsletter")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and first.json()["confirmation_token"]
    assert _event_count(session, customer.id) == 1
    stored = session.execute(text("SELECT response FROM consent_idempotency")).scalar_one()
    session.rollback()
    assert first.json()["confirmation_token"] not in str(stored)

    r = _grant(client, headers, customer.id, purpose="personalised_offers")
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    # the key belongs to the client: another client may use the same key
    other = {**auth_headers(session, client.app.state.runtime, "consent:write"),
             "Idempotency-Key": "order-4711-optin"}  # fmt: skip
    assert _grant(client, other, customer.id, purpose="newsletter").status_code == 201
    assert _event_count(session, customer.id) == 2


def test_reconsent_after_a_version_bump(runtime, session, writer, customer):
    with TestClient(create_app(runtime)) as client:
        _grant(client, writer, customer.id, purpose="personalised_offers")
        _grant(client, writer, customer.id, purpose="third_party_ads")
    purposes = dict(runtime.policy.purposes)
    purposes["personalised_offers"] = purposes["personalised_offers"].model_copy(
        update={"version": 2, "reconsent": True}
    )
    purposes["third_party_ads"] = purposes["third_party_ads"].model_copy(
        update={"version": 2, "reconsent": False}
    )
    policy = runtime.policy.model_copy(update={"purposes": purposes})
    bumped = dataclasses.replace(runtime, policy=policy)
    with TestClient(create_app(bumped)) as client:
        r = client.get(f"/v1/customers/{customer.id}/consents", headers=writer)
        got = {p["purpose"]: (p["status"], p["version"]) for p in r.json()["purposes"]}
        assert got["personalised_offers"] == ("reconsent_required", 1)
        assert got["third_party_ads"] == ("granted", 1)  # carries over
        r = _grant(client, writer, customer.id, purpose="personalised_offers")
        assert r.json()["state"] == {**r.json()["state"], "status": "granted", "version": 2}


def test_late_event_through_the_api(client, writer, customer):
    _grant(client, writer, customer.id)
    old = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = client.post(
        f"/v1/customers/{customer.id}/consents",
        json={"purpose": "personalised_offers", "status": "withdrawn", "channel": "store",
              "occurred_at": old},
        headers=writer,
    )  # fmt: skip
    assert r.status_code == 201
    assert r.json()["applied"] is False and r.json()["state"]["status"] == "granted"


# --- receipts -------------------------------------------------------------------------------


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[raw.index(b"granted")] ^= 0x01  # 'granted' -> 'franted': one changed byte
    return ".".join([head, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode(), sig])


def test_receipt_verifies_with_other_jose_libraries(client, writer, customer):
    receipt = _grant(client, writer, customer.id).json()["receipt"]
    jwks = client.get("/.well-known/jwks.json").json()

    # joserfc
    keys = KeySet.import_key_set(jwks)
    obj = rfc_jws.deserialize_compact(receipt, keys, algorithms=["ES256"])
    payload = json.loads(obj.payload)
    assert obj.protected["typ"] == "consent-receipt+jwt"
    with pytest.raises(BadSignatureError):
        rfc_jws.deserialize_compact(_tamper(receipt), keys, algorithms=["ES256"])

    # PyJWT
    header = pyjwt.get_unverified_header(receipt)
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    key = pyjwt.PyJWK(jwk).key
    assert (
        pyjwt.decode(receipt, key, algorithms=["ES256"], options={"verify_aud": False}) == payload
    )
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(_tamper(receipt), key, algorithms=["ES256"], options={"verify_aud": False})

    # Kantara Consent Receipt v1.1 field names
    for name in (
        "version", "jurisdiction", "consentTimestamp", "collectionMethod", "consentReceiptID",
        "piiPrincipalId", "piiControllers", "policyUrl", "services", "sensitive", "spiCat",
    ):  # fmt: skip
        assert name in payload, name
    assert payload["version"] == "KI-CR-v1.1.0"
    assert payload["piiPrincipalId"] == str(customer.id)
    assert payload["consentStatus"] == "granted" and payload["purposeId"] == "personalised_offers"
    assert payload["services"][0]["purposes"][0]["purposeCategory"]
    assert payload["piiControllers"][0]["piiController"] == "Tante Emma Online GmbH"
    assert "Erika" not in json.dumps(payload) and "Mustermann" not in json.dumps(payload)


def test_idempotency_key_for_another_customer_is_refused(client, writer, session, runtime):
    a = create_customer(session, runtime)
    b = create_customer(session, runtime)
    session.rollback()
    headers = {**writer, "Idempotency-Key": "k-1"}
    assert _grant(client, headers, a.id).status_code == 201
    r = _grant(client, headers, b.id)
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    assert _event_count(session, b.id) == 0


def test_history_filters_by_purpose_and_keeps_late_events(client, writer, customer):
    _grant(client, writer, customer.id)
    _grant(client, writer, customer.id, purpose="third_party_ads", channel="store",
           occurred_at=(datetime.now(UTC) - timedelta(days=3)).isoformat())  # fmt: skip
    r = client.get(
        f"/v1/customers/{customer.id}/consents/history",
        params={"purpose": "third_party_ads"},
        headers=writer,
    )
    [event] = r.json()["events"]
    assert event["purpose"] == "third_party_ads" and event["channel"] == "store"
    r = client.get(f"/v1/customers/{customer.id}/consents/history", headers=writer)
    # decision order: by occurred_at, so the older store event comes first
    assert [e["purpose"] for e in r.json()["events"]] == ["third_party_ads", "personalised_offers"]
