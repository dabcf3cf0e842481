"""``vault demo && vault serve``: on the embedded default the server sends mail itself."""

from __future__ import annotations

import time

from sqlmodel import Session

from tests.factories import create_customer
from tests.hardening.server import Server
from tests.mail.conftest import FAST
from tests.mail.helpers import enqueue, mail
from vault.config import Settings
from vault.db import upgrade
from vault.mail import drop
from vault.mail.models import MailStatus
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
