"""Erasure leaves no mail behind: rows (sent or not) go, drop files go, nothing of a mail is
left in any file of the data directory, and the certificate counts the mails."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from tests.factories import auth_headers, create_customer
from tests.mail.conftest import FAST
from tests.mail.helpers import enqueue, mail, mails
from vault.app import create_app
from vault.cli import app as cli
from vault.config import Settings
from vault.db import upgrade
from vault.dsr import erasure
from vault.mail import drop
from vault.mail.models import MailStatus
from vault.runtime import Runtime

MARKER = "tok-erase-me-7c41d0b2"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Runtime, TestClient]]:
    """The app as ``vault serve`` runs it on the embedded default (SQLite in the data
    directory, no VAULT_DATABASE_URL): the server delivers mail itself, to the mail drop."""
    settings = Settings(
        data_dir=tmp_path / "data",
        public_url="http://testserver",
        audit_seal_interval=0,
        _env_file=None,
    ).model_copy(update=FAST)
    assert settings.mail_delivered_by_server and settings.smtp is None
    upgrade(settings.resolved_database_url)
    runtime = Runtime.build(settings)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield runtime, client
    runtime.engine.dispose()


def _wait_sent(runtime: Runtime, mail_id, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = mail(runtime, mail_id)
        if row is not None and row.status == MailStatus.SENT:
            return
        time.sleep(0.02)
    raise AssertionError("the server did not deliver the mail")


def _residue(data_dir: Path, needles: dict[str, bytes]) -> list[str]:
    found = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        found += [f"{name} in {path.name}" for name, b in needles.items() if b in blob]
    return found


def test_the_embedded_server_delivers_and_erasure_leaves_no_mail_in_the_data_dir(embedded):
    runtime, client = embedded
    # not a deferred reader: the server's deliverer writes at the same time
    with Session(runtime.engine, expire_on_commit=False) as s:
        kept = create_customer(s, runtime, email="bleibt@example.de")
        gone = create_customer(s, runtime, email="geht.weg@example.de")
    sent = enqueue(runtime, gone.id, to="geht.weg@example.de", note=f"https://x/{MARKER}")
    _wait_sent(runtime, sent)  # delivered by the server's own deliverer, no worker
    other = enqueue(runtime, kept.id, to="bleibt@example.de")
    _wait_sent(runtime, other)
    directory = drop.drop_dir(runtime.settings)
    needles = {
        "ciphertext": mail(runtime, sent).message_ciphertext,
        "link": MARKER.encode(),
        "address": b"geht.weg@example.de",
    }
    assert drop.path_of(directory, sent).exists()
    assert "link in" in " ".join(_residue(runtime.settings.data_dir, needles))

    with Session(runtime.engine) as s:
        staff = auth_headers(s, runtime, "dsr:execute")
    r = client.delete(f"/v1/customers/{gone.id}", headers=staff)
    assert r.status_code == 204, r.text

    assert _residue(runtime.settings.data_dir, needles) == []
    assert not drop.path_of(directory, sent).exists()
    assert drop.path_of(directory, other).exists()  # another customer's mail stays
    assert [m.id for m in mails(runtime)] == [other]


def test_unsent_and_sent_mails_go_with_the_customer_and_are_counted(
    session, runtime, client, backend
):
    from vault.mail.delivery import Deliverer

    c = create_customer(session, runtime)
    first = enqueue(runtime, c.id)
    Deliverer(runtime).run_once()
    enqueue(runtime, c.id)  # still pending
    assert drop.path_of(drop.drop_dir(runtime.settings), first).exists()
    staff = auth_headers(session, runtime, "dsr:execute")
    r = client.delete(f"/v1/customers/{c.id}", headers=staff)
    assert r.status_code == 204, r.text
    assert mails(runtime) == []
    assert not drop.path_of(drop.drop_dir(runtime.settings), first).exists()
    cert = client.get(f"/v1/customers/{c.id}/erasure-certificate", headers=staff).json()
    payload = erasure.verify_certificate(runtime.signer, cert["certificate"])
    assert payload["destroyed"]["mails"] == 2
    assert "mail_outbox" in erasure.ERASED_TABLES  # vacuumed on PostgreSQL after a batch


def test_the_batch_erasure_removes_drop_files_too(session, runtime, tmp_path):
    from vault.mail.delivery import Deliverer

    c = create_customer(session, runtime)
    mail_id = enqueue(runtime, c.id)
    Deliverer(runtime).run_once()
    path = drop.path_of(drop.drop_dir(runtime.settings), mail_id)
    assert path.exists()
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{c.id}\n")
    env = {
        "VAULT_DATA_DIR": str(runtime.settings.data_dir),
        "VAULT_DATABASE_URL": runtime.settings.resolved_database_url,
    }
    result = CliRunner().invoke(cli, ["dsr", "erase-many", str(ids), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["erased"] == 1
    assert not path.exists() and mails(runtime) == []
