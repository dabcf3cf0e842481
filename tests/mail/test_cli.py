"""``vault mail list|show|test|purge``: a newcomer finds the mail and clicks the link."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from tests.factories import create_customer
from tests.mail.helpers import LINK, drain, enqueue, smtp_runtime
from vault.cli import app
from vault.mail import drop
from vault.mail.delivery import Deliverer


@pytest.fixture
def env(settings):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_MAIL_FROM": settings.mail_from,
        "VAULT_SMTP_URL": "",
    }


def _invoke(env, *args):
    return CliRunner().invoke(app, ["mail", *args], env=env)


def test_list_and_show_the_mail_drop(session, runtime, env):
    c = create_customer(session, runtime)
    sent = enqueue(runtime, c.id, to="erika@example.de", language="en")
    drain(Deliverer(runtime))
    waiting = enqueue(runtime, c.id, to="erika@example.de", note=None)

    r = _invoke(env, "list")
    assert r.exit_code == 0, r.output
    assert f"the mail drop {drop.drop_dir(runtime.settings)}" in r.output
    (sent_line,) = [line for line in r.output.splitlines() if line.startswith(str(sent))]
    assert (
        "sent" in sent_line and "test_message.en" in sent_line and "erika@example.de" in sent_line
    )
    assert any(
        line.startswith(str(waiting)) and "pending" in line for line in r.output.splitlines()
    )

    r = _invoke(env, "list", "--json", "--status", "pending")
    listed = json.loads(r.output)
    assert [m["id"] for m in listed] == [str(waiting)] and listed[0]["to"] == "erika@example.de"

    r = _invoke(env, "show", str(sent))
    assert r.exit_code == 0, r.output
    assert "To: erika@example.de" in r.output and "Subject: Consent Vault test message" in r.output
    assert "State: sent, 1 attempt(s)" in r.output
    assert f"File: {drop.path_of(drop.drop_dir(runtime.settings), sent)}" in r.output
    assert LINK in r.output  # the link, in the text part, ready to click

    r = _invoke(env, "show", str(sent), "--html")
    assert f"<p>{LINK}</p>" in r.output and "<html" in r.output
    r = _invoke(env, "show", str(sent), "--raw")
    assert f"Message-ID: <{sent}@tante-emma.example>" in r.output
    assert "Content-Type: multipart/alternative" in r.output


def test_show_an_unknown_or_erased_mail_exits_1(session, runtime, env):
    from vault.db import transaction
    from vault.dsr import erasure
    from vault.provenance import Caller

    assert _invoke(env, "show", str(uuid.uuid4())).exit_code == 1
    assert _invoke(env, "list", "--status", "lost").exit_code == 2
    c = create_customer(session, runtime)
    mail_id = enqueue(runtime, c.id)
    with transaction(runtime.engine) as s:
        erasure.erase(
            session=s, customer_id=c.id, by=Caller("cli"), notary=erasure.Notary.of(runtime)
        )
    r = _invoke(env, "show", str(mail_id))
    assert r.exit_code == 1 and "no mail" in r.output


def test_vault_mail_test_sends_through_smtp(runtime, env, smtpd):
    server = smtpd()
    r = _invoke({**env, "VAULT_SMTP_URL": server.url()}, "test", "--to", "ops@example.de")
    assert r.exit_code == 0, r.output
    (msg,) = server.messages
    assert msg["To"] == "ops@example.de" and msg["Subject"] == "Testnachricht der Consent Vault"
    r = _invoke({**env, "VAULT_SMTP_URL": server.url()}, "test", "--to", "a@b.de\nBcc: c@d.de")
    assert r.exit_code == 2 and len(server.messages) == 1


def test_vault_mail_test_reports_the_failure_code(runtime, env):
    from tests.hardening.server import free_port

    r = _invoke(
        {**env, "VAULT_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"}, "test", "--to", "o@ex.de"
    )
    assert r.exit_code == 1 and "failed: connection:ConnectionRefusedError" in r.output


def test_vault_mail_test_without_smtp_writes_the_mail_drop(runtime, env):
    r = _invoke(env, "test", "--to", "ops@example.de", "--language", "en")
    assert r.exit_code == 0, r.output
    (path,) = drop.drop_dir(runtime.settings).glob("*.eml")
    assert "Subject: Consent Vault test message" in path.read_text()


def test_list_names_the_smtp_server_without_its_password(session, runtime, env, smtpd):
    server = smtpd()
    url = server.url("smtp", "vault:hunter2@")
    c = create_customer(session, runtime)
    enqueue(smtp_runtime(runtime, url), c.id)
    r = _invoke({**env, "VAULT_SMTP_URL": url}, "list")
    assert r.exit_code == 0 and f"127.0.0.1:{server.port}" in r.output
    assert "hunter2" not in r.output
