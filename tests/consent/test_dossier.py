"""The consent dossier: every statement, its evidence and receipt, the double opt-in mail's
receipt and confirmation evidence, the last use, signed (verified with joserfc and PyJWT against
the served JWKS), printable in de and en, still answered after erasure without PII."""

from __future__ import annotations

import base64
import hashlib
import html
import json

import jwt as pyjwt
import pytest
from joserfc import jws as rfc_jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from tests.factories import auth_headers, create_customer, record_consent
from tests.mail.conftest import FAST
from tests.mail.helpers import drain, enqueue, smtp_runtime
from tests.mail.smtpd import SmtpServer
from vault.consent import dossier, service
from vault.crypto.envelope import DataKey, Envelope
from vault.mail.delivery import Deliverer
from vault.mail.render import template_version
from vault.provenance import Caller

CID = "00000000-0000-0000-0000-000000000001"
EMAIL = "erika.dossier@example.de"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update=FAST)


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def reader(session, runtime):
    return auth_headers(session, runtime, "consent:read")


def _confirm_with_evidence(monkeypatch, session, runtime, token: str, evidence: dict) -> None:
    """A real confirmation (service.confirm: token, lock, event, projection) whose ledger event
    carries ``evidence``: the confirm page of issue 16 passes mail_id, ip and user agent; until
    it lands here, the statement it builds is given the evidence."""
    real = service.Statement

    def statement(**fields):
        if fields.get("status") == "confirmed":
            fields["evidence"] = evidence
        return real(**fields)

    monkeypatch.setattr(service, "Statement", statement)
    service.confirm(
        session=session,
        policy=runtime.policy,
        signer=runtime.signer,
        settings=runtime.settings,
        token=token,
        by=Caller("client:another-app"),  # never the client that recorded the grant
    )
    session.commit()
    monkeypatch.setattr(service, "Statement", real)


@pytest.fixture
def confirmed(monkeypatch, session, runtime, smtp_server):
    """A customer with a newsletter grant confirmed by double opt-in through a mail that left
    the vault over SMTP, a plain grant of personalised offers and a release for it."""
    monkeypatch.setattr(dossier, "DOI_TEMPLATES", ("test_message", "doi_confirmation"))
    rt = smtp_runtime(runtime, smtp_server.url())
    c = create_customer(session, runtime, email=EMAIL)
    session.commit()
    pending = record_consent(
        session, runtime, c.id, "newsletter", late_import=False, token_to_caller=True
    )
    assert pending.confirmation_token
    mail_id = enqueue(rt, c.id, to=EMAIL)
    assert drain(Deliverer(rt)) == 1
    evidence = {"mail_id": str(mail_id), "ip": "203.0.113.0/24", "user_agent": UA}
    _confirm_with_evidence(monkeypatch, session, runtime, pending.confirmation_token, evidence)
    record_consent(session, runtime, c.id, "personalised_offers", late_import=False)
    return {"customer": c, "mail_id": mail_id, "evidence": evidence, "server": smtp_server}


def _get(client, headers, customer_id, **kw):
    return client.get(f"/v1/customers/{customer_id}/consents/dossier", headers=headers, **kw)


def test_the_dossier_needs_a_token_and_consent_read(client, session, runtime):
    r = client.get(f"/v1/customers/{CID}/consents/dossier")
    assert r.status_code == 401 and r.json()["error"] == "not_authenticated"
    wrong = auth_headers(session, runtime, "consent:write", "data:read")
    r = _get(client, wrong, CID)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    r = _get(client, {**wrong, "Accept": "text/html"}, CID)
    assert r.status_code == 403 and "text/html" not in r.headers["content-type"]


def test_unknown_customer_is_404_and_another_customer_sees_nothing_of_it(
    client, session, runtime, reader, confirmed
):
    r = _get(client, reader, CID)
    assert r.status_code == 404 and r.json()["error"] == "customer_not_found"
    r = _get(client, {**reader, "Accept": "text/html"}, CID)
    assert r.status_code == 404
    other = create_customer(session, runtime)
    session.commit()
    r = _get(client, reader, other.id)
    assert r.status_code == 200
    body = r.json()["dossier"]
    assert body["customer"]["id"] == str(other.id)
    assert all(p["statements"] == [] for p in body["purposes"])
    assert str(confirmed["mail_id"]) not in r.text and body["doi_mails"] == []


def test_the_dossier_of_a_confirmed_double_opt_in(client, reader, confirmed):
    r = _get(client, reader, confirmed["customer"].id)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    d = body["dossier"]
    assert d["format"] == dossier.FORMAT and d["customer"]["status"] == "active"
    purposes = {p["purpose"]: p for p in d["purposes"]}
    # every consent-based purpose is listed, decided or not
    assert {"newsletter", "personalised_offers", "third_party_ads"} <= set(purposes)
    assert purposes["third_party_ads"]["statements"] == []

    news = purposes["newsletter"]
    assert news["status"] == "granted" and news["double_opt_in"] is True
    assert [s["status"] for s in news["statements"]] == ["pending_confirmation", "confirmed"]
    pending, conf = news["statements"]
    assert pending["confirmation_mail"] is None
    assert conf["evidence"] == confirmed["evidence"]
    assert conf["channel"] == "email" and conf["method"] == "double_opt_in_confirmation"
    assert len(conf["notice_hash"]) == 64 and conf["notice"]["title"]  # wording still current
    assert conf["receipt"].count(".") == 2

    server = confirmed["server"]
    (raw,) = server.raw
    mail = conf["confirmation_mail"]
    assert mail["mail_id"] == str(confirmed["mail_id"])
    receipt = mail["receipt"]
    assert receipt["message_id"] == str(server.messages[0]["Message-ID"])
    assert receipt["sha256"] == hashlib.sha256(raw).hexdigest()
    assert receipt["transport"] == "smtp" and receipt["accepted_at"]
    assert receipt["template"] == "test_message"
    assert receipt["template_version"] == template_version("test_message", "de")
    assert d["doi_mails"] == [receipt]  # every mail of a DOI template is listed too

    # no contact data anywhere in the answer
    assert EMAIL not in r.text and "Erika" not in r.text and "Mustermann" not in r.text


def test_mail_receipts_of_other_templates_are_not_doi_mails(monkeypatch, client, reader, confirmed):
    monkeypatch.setattr(dossier, "DOI_TEMPLATES", ("doi_confirmation",))
    d = _get(client, reader, confirmed["customer"].id).json()["dossier"]
    assert d["doi_mails"] == []
    # the confirmation names its mail itself, whatever the template
    conf = {p["purpose"]: p for p in d["purposes"]}["newsletter"]["statements"][-1]
    assert conf["confirmation_mail"]["receipt"]["template"] == "test_message"


def test_a_mail_id_without_receipt_says_so(monkeypatch, client, session, runtime, reader):
    c = create_customer(session, runtime)
    session.commit()
    pending = record_consent(
        session, runtime, c.id, "newsletter", late_import=False, token_to_caller=True
    )
    never_sent = "5d9c0f3e-8a51-4c47-9f0e-2b6f1d0a7c11"
    _confirm_with_evidence(
        monkeypatch, session, runtime, pending.confirmation_token, {"mail_id": never_sent}
    )
    d = _get(client, reader, c.id).json()["dossier"]
    conf = {p["purpose"]: p for p in d["purposes"]}["newsletter"]["statements"][-1]
    assert conf["confirmation_mail"] == {"mail_id": never_sent, "receipt": None}


def test_last_used_is_the_last_release_for_that_purpose(
    client, session, runtime, reader, confirmed
):
    c = confirmed["customer"]
    d = _get(client, reader, c.id).json()["dossier"]
    assert {p["purpose"]: p["last_used"] for p in d["purposes"]}["personalised_offers"] is None
    app = auth_headers(session, runtime, "data:read", purposes=["personalised_offers"])
    for _ in range(2):
        r = client.get(f"/v1/customers/{c.id}/data?purpose=personalised_offers", headers=app)
        assert r.status_code == 200, r.text
    denied = auth_headers(session, runtime, "data:read", purposes=["third_party_ads"])
    r = client.get(f"/v1/customers/{c.id}/data?purpose=third_party_ads", headers=denied)
    assert r.status_code == 403  # a refusal is no use
    d = _get(client, reader, c.id).json()["dossier"]
    used = {p["purpose"]: p["last_used"] for p in d["purposes"]}
    assert used["third_party_ads"] is None and used["newsletter"] is None
    last = used["personalised_offers"]
    assert last["action"] == "data.read" and last["actor"].startswith("client:cv_")
    assert last["at"] >= d["purposes"][0]["statements"][0]["occurred_at"][:19]


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["customer"]["status"] = "restricted"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def test_the_signature_verifies_with_the_published_jwks(client, reader, confirmed):
    body = _get(client, reader, confirmed["customer"].id).json()
    jwks = client.get("/.well-known/jwks.json").json()
    token = body["jws"]

    keys = KeySet.import_key_set(jwks)
    obj = rfc_jws.deserialize_compact(token, keys, algorithms=["ES256"])
    assert obj.protected["typ"] == "consent-dossier+jwt"
    assert obj.protected["kid"] in {k["kid"] for k in jwks["keys"]}
    assert json.loads(obj.payload) == body["dossier"]  # the payload is the dossier
    with pytest.raises(BadSignatureError):
        rfc_jws.deserialize_compact(_tamper(token), keys, algorithms=["ES256"])

    header = pyjwt.get_unverified_header(token)
    key = pyjwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).key
    assert pyjwt.decode(token, key, algorithms=["ES256"]) == body["dossier"]
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(_tamper(token), key, algorithms=["ES256"])

    # each statement's own receipt verifies too
    conf = body["dossier"]["purposes"][0]["statements"][-1]
    rfc_jws.deserialize_compact(conf["receipt"], keys, algorithms=["ES256"])


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("de", ["Einwilligungsnachweis", "Bestätigungsmail", "SHA-256 der gesendeten Nachricht",
                "bestätigt (Double-Opt-in)", "Zuletzt genutzt"]),
        ("en", ["Consent dossier", "Confirmation mail", "SHA-256 of the message sent",
                "confirmed (double opt-in)", "Last used"]),
    ],
)  # fmt: skip
def test_the_printable_page(client, reader, confirmed, lang, words):
    c = confirmed["customer"]
    r = _get(client, {**reader, "Accept": "text/html"}, c.id, params={"lang": lang})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert f'<html lang="{lang}">' in page
    for word in words:
        assert word in page, word
    (raw,) = confirmed["server"].raw
    assert hashlib.sha256(raw).hexdigest() in page
    assert html.escape(str(confirmed["server"].messages[0]["Message-ID"])) in page
    assert "203.0.113.0/24" in page and str(confirmed["mail_id"]) in page
    assert "<script" not in page and "https://" not in page.replace(
        "http://127.0.0.1", ""
    )  # no script, no asset from elsewhere
    assert "/me/static/dossier.css" in page and EMAIL not in page and "Erika" not in page


def test_the_page_language_follows_accept_language(client, reader, confirmed):
    c = confirmed["customer"]
    headers = {**reader, "Accept": "text/html", "Accept-Language": "en-GB,en;q=0.8"}
    assert "Consent dossier" in _get(client, headers, c.id).text
    headers["Accept-Language"] = "fr"
    assert "Einwilligungsnachweis" in _get(client, headers, c.id).text  # German by default
    r = _get(client, {**reader, "Accept": "text/html"}, c.id, params={"lang": "xx"})
    assert r.status_code == 422


def test_the_print_stylesheet_is_served(client):
    r = client.get("/me/static/dossier.css")
    assert r.status_code == 200 and "@media print" in r.text


def test_after_erasure_the_dossier_still_proves_the_consents(
    client, session, runtime, reader, confirmed, monkeypatch
):
    c = confirmed["customer"]
    before = _get(client, reader, c.id).json()["dossier"]
    staff = auth_headers(session, runtime, "dsr:execute")
    assert client.delete(f"/v1/customers/{c.id}", headers=staff).status_code == 204

    # nothing is decrypted: the customer's data key is gone, and no decryption is tried
    def no_decrypt(*a, **kw):
        raise AssertionError("the dossier decrypted something")

    monkeypatch.setattr(Envelope, "unwrap", no_decrypt)
    monkeypatch.setattr(DataKey, "decrypt", no_decrypt)
    r = _get(client, reader, c.id)
    assert r.status_code == 200, r.text
    d = r.json()["dossier"]
    assert d["customer"]["status"] == "erased" and d["customer"]["erased_at"]
    after = {p["purpose"]: p for p in d["purposes"]}
    was = {p["purpose"]: p for p in before["purposes"]}
    assert after["newsletter"]["status"] is None  # no current state after erasure
    assert after["newsletter"]["statements"] == was["newsletter"]["statements"]
    assert d["doi_mails"] == before["doi_mails"] and d["doi_mails"]
    assert EMAIL not in r.text and "Erika" not in r.text

    jwks = client.get("/.well-known/jwks.json").json()
    obj = rfc_jws.deserialize_compact(
        r.json()["jws"], KeySet.import_key_set(jwks), algorithms=["ES256"]
    )
    assert json.loads(obj.payload)["customer"]["status"] == "erased"

    page = _get(client, {**reader, "Accept": "text/html"}, c.id, params={"lang": "de"}).text
    assert "gelöscht am" in page and str(confirmed["mail_id"]) in page


@pytest.mark.parametrize(
    ("lang", "heading", "off"),
    [("de", "Präferenzen: Kontaktwege, Themen, Häufigkeit, Pause", "aus"),
     ("en", "Preferences: contact channels, topics, frequency, pause", "off")],
)  # fmt: skip
def test_the_printable_page_shows_the_preferences_the_json_holds(
    client, session, runtime, reader, confirmed, lang, heading, off
):
    """The signed JSON carries ``preferences``; the printout shows the same: the choices now,
    every change with its touchpoint, actor and evidence."""
    c = confirmed["customer"]
    writer = auth_headers(session, runtime, "consent:write")
    r = client.patch(
        f"/v1/customers/{c.id}/preferences",
        json={"topics": {"newsletter": {"wine": False}}, "channel": "call_center"},
        headers=writer,
    )
    assert r.status_code == 200, r.text
    d = _get(client, reader, c.id).json()["dossier"]["preferences"]
    assert d["current"]["topics"]["newsletter"]["wine"] is False
    (change,) = d["changes"]
    page = _get(client, {**reader, "Accept": "text/html"}, c.id, params={"lang": lang}).text
    section = page[page.index('<section id="preferences">') :]
    section = section[: section.index("</section>")]
    assert heading in section
    assert f"<code>wine</code>: {off}" in section
    assert change["actor"] in section and json.dumps(change["change"]) in section
