"""Signed erasure certificates: every erasure returns and stores one (issue 15, item 7)."""

import base64
import json

import pytest
from joserfc import jws as rfc_jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from sqlmodel import Session, select
from typer.testing import CliRunner

from tests.dsr.helpers import customer_with_data, dsr
from tests.factories import create_customer
from tests.selfservice.helpers import csrf, sign_in
from vault.cli import app as cli
from vault.crypto.signing import TokenInvalid
from vault.dsr import erasure
from vault.dsr.models import DataSubjectRequest, ErasureCertificate
from vault.provenance import Caller


@pytest.fixture
def env(settings):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_PUBLIC_URL": settings.public_url,
    }


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["destroyed"]["values"] = 0
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def test_api_erasure_answers_a_certificate_another_jose_library_verifies(
    client, session, runtime, env, tmp_path
):
    staff = dsr(session, runtime)
    c = customer_with_data(session, runtime)
    session.commit()
    r = client.delete(f"/v1/customers/{c.id}", headers=staff)
    assert r.status_code == 204 and r.content == b""
    cert = r.headers["Erasure-Certificate"]

    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    obj = rfc_jws.deserialize_compact(cert, keys, algorithms=["ES256"])
    assert obj.protected["typ"] == "erasure-certificate+jwt"
    payload = json.loads(obj.payload)
    assert payload["customer_id"] == str(c.id) and payload["iss"] == "http://testserver"
    destroyed = payload["destroyed"]
    assert destroyed["wrapped_key"]["kek_id"] == runtime.envelope.primary_kek_id
    assert destroyed["values"] == 8 and destroyed["index_entries"] >= 2
    assert "email" in destroyed["attributes"] and "last_name" in destroyed["attributes"]
    with Session(runtime.engine) as s:
        (req,) = s.exec(select(DataSubjectRequest).where(DataSubjectRequest.customer_id == c.id))
    assert payload["dsr_request_id"] == str(req.id)
    # no value of the customer in it
    text = json.dumps(payload)
    for value in ("Erika", "Mustermann", "Example.de", "10115", "1234567", "Laktose"):
        assert value not in text
    with pytest.raises(BadSignatureError):
        rfc_jws.deserialize_compact(_tamper(cert), keys, algorithms=["ES256"])

    # GET answers the stored one
    got = client.get(f"/v1/customers/{c.id}/erasure-certificate", headers=staff)
    assert got.status_code == 200
    assert got.json()["certificate"] == cert and got.json()["customer_id"] == str(c.id)
    assert got.json()["issued_at"]

    # vault erasure verify: the string, a file; a tampered one fails
    ok = CliRunner().invoke(cli, ["erasure", "verify", cert], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["certificate_id"] == payload["certificate_id"]
    path = tmp_path / "cert.jws"
    path.write_text(cert + "\n")
    assert CliRunner().invoke(cli, ["erasure", "verify", str(path)], env=env).exit_code == 0
    bad = CliRunner().invoke(cli, ["erasure", "verify", _tamper(cert)], env=env)
    assert bad.exit_code == 1 and "invalid erasure certificate" in bad.output


def test_get_certificate_404_when_never_erased_and_needs_dsr_scope(client, session, runtime):
    c = create_customer(session, runtime)
    session.commit()
    r = client.get(f"/v1/customers/{c.id}/erasure-certificate", headers=dsr(session, runtime))
    assert r.status_code == 404 and r.json()["error"] == "erasure_certificate_not_found"
    r = client.get(f"/v1/customers/{c.id}/erasure-certificate")
    assert r.status_code == 401


def test_certificate_cannot_pass_as_another_token_and_no_other_token_passes_as_one(runtime):
    receipt_like = runtime.signer.sign_payload({"customer_id": "x"}, typ="consent-receipt+jwt")
    with pytest.raises(TokenInvalid):
        erasure.verify_certificate(runtime.signer, receipt_like)
    cert = runtime.signer.sign_payload({"customer_id": "x"}, typ=erasure.CERTIFICATE_TYP)
    with pytest.raises(TokenInvalid):
        runtime.signer.verify(cert, typ="at+jwt", audience="consent-vault", issuer="x")
    assert erasure.verify_certificate(runtime.signer, cert) == {"customer_id": "x"}


def test_batch_erasure_stores_one_certificate_per_customer_and_journals_them(
    session, runtime, settings
):
    ids = [create_customer(session, runtime).id for _ in range(3)]
    session.commit()
    result = erasure.erase_many(
        session=session, customer_ids=ids, by=Caller("cli"), notary=erasure.Notary.of(runtime)
    )
    session.commit()
    assert set(result.certificates) == set(ids)
    with Session(runtime.engine) as s:
        rows = s.exec(select(ErasureCertificate)).all()
    assert sorted(r.customer_id for r in rows) == sorted(ids)
    for row in rows:
        payload = erasure.verify_certificate(runtime.signer, row.certificate)
        assert payload["customer_id"] == str(row.customer_id)
        assert payload["certificate_id"] == str(row.id)
        assert payload["dsr_request_id"] == str(row.dsr_request_id)
    journal = list(erasure.read_journal(settings.data_dir / erasure.JOURNAL_NAME))
    assert [e.customer_id for e in journal] == ids
    assert {e.certificate.jws for e in journal} == {r.certificate for r in rows}
    mode = (settings.data_dir / erasure.JOURNAL_NAME).stat().st_mode & 0o777
    assert mode == 0o600


def test_self_service_erasure_stores_a_certificate(client, session, runtime, settings):
    c = create_customer(session, runtime)
    session.commit()
    sign_in(client, session, runtime, c.id)
    r = client.post("/me/erase", data={"csrf_token": csrf(client, "/me/erase"), "confirm": "yes"})
    assert r.status_code == 200
    with Session(runtime.engine) as s:
        cert = erasure.certificate_of(s, c.id)
    payload = erasure.verify_certificate(runtime.signer, cert.jws)
    assert payload["erased_by"] == f"customer:{c.id}" and payload["customer_id"] == str(c.id)
    (entry,) = erasure.read_journal(settings.data_dir / erasure.JOURNAL_NAME)
    assert entry.certificate.id == cert.id


def test_the_journal_line_is_durable_before_the_commit(session, runtime, settings):
    """Written and fsync'd before the commit: a crash after the commit cannot lose it (a
    rolled-back erasure leaves a line that a restore replays: the customer asked for it)."""
    c = create_customer(session, runtime)
    session.commit()
    erasure.erase(
        session=session, customer_id=c.id, by=Caller("cli"), notary=erasure.Notary.of(runtime)
    )
    (entry,) = erasure.read_journal(settings.data_dir / erasure.JOURNAL_NAME)
    assert entry.customer_id == c.id
    session.rollback()
    with Session(runtime.engine) as s:
        assert erasure.certificate_of(s, c.id) is None
