"""SMTP against a real server on loopback (aiosmtpd): plain, AUTH, STARTTLS, smtps; the
certificate is verified (VAULT_SMTP_CA_FILE for the test's self-signed one) and STARTTLS is
never silently skipped."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.factories import create_customer
from tests.mail.helpers import LINK, drain, enqueue, mail, smtp_runtime
from vault.mail.delivery import Deliverer
from vault.mail.models import MailStatus

# aiosmtpd warns about AUTH without TLS; plain smtp:// with AUTH is one of the cases under test
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

USER, PASSWORD = "vault", "s3cret:p@ss/word"
CREDENTIALS = f"{USER}:{quote(PASSWORD, safe='')}@"


def _send_one(session, runtime, url, ca_file=None):
    rt = smtp_runtime(runtime, url, ca_file)
    c = create_customer(session, runtime)
    mail_id = enqueue(rt, c.id)
    assert drain(Deliverer(rt)) == 1
    return mail(rt, mail_id)


def _received(server, row) -> None:
    assert row.status == MailStatus.SENT, row.last_error
    (msg,) = server.messages
    assert msg["Message-ID"] == f"<{row.id}@tante-emma.example>"
    assert msg["To"] == "erika@example.de" and msg["Subject"] == "Testnachricht der Consent Vault"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert LINK in text and LINK in html


def test_plain_smtp(session, runtime, smtpd):
    server = smtpd()
    _received(server, _send_one(session, runtime, server.url()))
    assert server.authenticated == [False]


def test_plain_smtp_with_auth(session, runtime, smtpd):
    """A relay on loopback may take AUTH without TLS (production refuses it elsewhere)."""
    server = smtpd(auth=(USER, PASSWORD))
    _received(server, _send_one(session, runtime, server.url("smtp", CREDENTIALS)))
    assert server.authenticated == [True]


def test_starttls_with_auth_verifies_the_certificate(session, runtime, smtpd, cert):
    server = smtpd(starttls=True, auth=(USER, PASSWORD), cert=cert)
    row = _send_one(session, runtime, server.url("smtp+starttls", CREDENTIALS), ca_file=cert[0])
    _received(server, row)
    assert server.authenticated == [True]


def test_smtps_with_auth(session, runtime, smtpd, cert):
    server = smtpd(implicit_tls=True, auth=(USER, PASSWORD), cert=cert)
    row = _send_one(session, runtime, server.url("smtps", CREDENTIALS), ca_file=cert[0])
    _received(server, row)
    assert server.authenticated == [True]


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_a_certificate_the_client_does_not_trust_is_refused(session, runtime, smtpd, cert, scheme):
    """Without VAULT_SMTP_CA_FILE the self-signed certificate is not trusted: nothing is
    sent, the password never leaves, the mail is retried later."""
    server = smtpd(
        starttls=scheme == "smtp+starttls",
        implicit_tls=scheme == "smtps",
        auth=(USER, PASSWORD),
        cert=cert,
    )
    row = _send_one(session, runtime, server.url(scheme, CREDENTIALS))
    assert row.status == MailStatus.RETRYING and row.last_error == "tls_verify_failed"
    assert server.messages == [] and server.auth_attempts == 0


def test_starttls_is_required_when_asked_for(session, runtime, smtpd):
    """A server (or a man in the middle) that offers no STARTTLS gets nothing, not a
    plaintext session."""
    server = smtpd(auth=None)
    row = _send_one(session, runtime, server.url("smtp+starttls", CREDENTIALS))
    assert row.status == MailStatus.RETRYING and row.last_error == "smtp_starttls_not_offered"
    assert server.messages == []


def test_a_wrong_password_is_a_retry_not_a_bounce(session, runtime, smtpd, cert):
    server = smtpd(starttls=True, auth=(USER, PASSWORD), cert=cert)
    url = server.url("smtp+starttls", f"{USER}:wrong@")
    row = _send_one(session, runtime, url, ca_file=cert[0])
    assert row.status == MailStatus.RETRYING and row.last_error == "smtp_auth_535"
    assert server.messages == []


def test_a_message_refused_at_data_bounces(session, runtime, smtpd, monkeypatch):
    server = smtpd()
    from tests.mail import smtpd as smtpd_module

    async def refuse_data(self, server_, session_, envelope):
        return "554 5.6.0 message content rejected"

    monkeypatch.setattr(smtpd_module._Handler, "handle_DATA", refuse_data)
    row = _send_one(session, runtime, server.url())
    assert row.status == MailStatus.BOUNCED and row.last_error == "smtp_data_554"
