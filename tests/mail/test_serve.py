"""``vault demo && vault serve``: on the embedded default the server sends mail itself."""

from __future__ import annotations

import time

from sqlmodel import Session, select

from tests.factories import create_customer
from tests.hardening.server import Server
from tests.mail.conftest import FAST
from tests.mail.helpers import enqueue, mail
from vault.config import Settings
from vault.db import upgrade
from vault.mail import drop
from vault.mail.models import MailMessage, MailStatus
from vault.runtime import Runtime


def test_vault_serve_on_the_embedded_default_delivers_to_the_mail_drop(tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data", audit_seal_interval=0, _env_file=None
    ).model_copy(update=FAST)
    upgrade(settings.resolved_database_url)
    runtime = Runtime.build(settings)
    try:
        with Session(runtime.engine, expire_on_commit=False) as s:
            c = create_customer(s, runtime)
        before = enqueue(runtime, c.id)  # queued while no server runs (as 'vault demo' would)
        # no VAULT_DATABASE_URL: the embedded default, no 'vault worker' anywhere
        with Server(settings, tmp_path, database_url="", mail_poll_interval="0.1"):
            after = enqueue(runtime, c.id)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(
                mail(runtime, m).status == MailStatus.SENT for m in (before, after)
            ):
                time.sleep(0.1)
        for m in (before, after):
            assert mail(runtime, m).status == MailStatus.SENT
            assert drop.path_of(drop.drop_dir(settings), m).exists()
    finally:
        runtime.engine.dispose()


def test_a_server_on_an_explicit_database_leaves_mail_to_the_worker(session, runtime, client):
    """With VAULT_DATABASE_URL (as on PostgreSQL) the server does not deliver: 'vault worker'
    does, so N replicas do not all poll the outbox."""
    assert not runtime.settings.mail_delivered_by_server
    c = create_customer(session, runtime)
    mail_id = enqueue(runtime, c.id)
    time.sleep(0.5)
    assert mail(runtime, mail_id).status == MailStatus.PENDING


def test_a_server_killed_between_the_commit_and_the_send_sends_the_mail_after_restart_once(
    settings, runtime, session, smtpd, tmp_path
):
    """Issue 16's acceptance: a DOI grant commits its mail, the server dies (SIGKILL) before
    any deliverer sent it; after the restart the mail goes out, exactly once, and a further
    restart sends nothing again."""
    import httpx

    from tests.factories import create_client, token

    smtp = smtpd()
    c = create_customer(session, runtime, email="killed@example.de")
    app, _ = create_client(session, runtime, scopes=["consent:write"])
    headers = {"Authorization": f"Bearer {token(runtime, app)}"}
    session.rollback()
    grant = {"purpose": "newsletter", "status": "granted", "channel": "web"}
    # first life: nothing delivers in this process, so the mail is committed and never sent
    first = Server(settings, tmp_path / "first", mail_in_server="false")
    with first:
        r = httpx.post(f"{first.url}/v1/customers/{c.id}/consents", json=grant, headers=headers)
        assert r.status_code == 201, r.text
        first.kill()
    with Session(runtime.engine) as s:
        (row,) = s.exec(select(MailMessage).where(MailMessage.customer_id == c.id)).all()
        assert row.status == MailStatus.PENDING and smtp.messages == []
        mail_id = row.id
    deliver = {
        "mail_in_server": "true",
        "smtp_url": smtp.url(),
        "mail_poll_interval": "0.1",
    }
    for life in ("second", "third"):
        with Server(settings, tmp_path / life, **deliver):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and mail(runtime, mail_id).status != "sent":
                time.sleep(0.1)
            time.sleep(1.0)  # ten more polls: nothing is sent twice
        assert mail(runtime, mail_id).status == MailStatus.SENT
        assert smtp.message_ids() == [f"<{mail_id}@localhost>"]
        assert smtp.messages[0]["To"] == "killed@example.de"
