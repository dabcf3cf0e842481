"""Key epochs on both providers and both databases: ``vault keys retire`` after rotate and
rewrap makes an older copy of the database unreadable; the worker's scheduled epoch job."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from tests.crypto.conftest import provider_settings
from tests.factories import create_customer
from vault.cli import app
from vault.crypto.keys import KEY_FILE_NAME
from vault.customers import service
from vault.customers.models import Customer
from vault.db import utcnow
from vault.errors import DecryptionError
from vault.events import secrets, webhooks
from vault.events.models import Webhook
from vault.events.worker import EPOCH_GRACE, Worker
from vault.provenance import Caller
from vault.runtime import Runtime


@pytest.fixture(params=["file", "pkcs11"])
def settings(request, db_url, data_dir):
    tok = request.getfixturevalue("token") if request.param == "pkcs11" else None
    return provider_settings(
        request.param,
        data_dir,
        tok,
        database_url=db_url,
        public_url="http://testserver",
        audit_seal_interval=0,
    )


@pytest.fixture
def env(settings):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_KEY_PROVIDER": settings.key_provider,
    }


def _rows(session: Session) -> list[tuple]:
    session.rollback()  # a fresh snapshot (SQLite readers keep theirs)
    return [
        (c.id, bytes(c.dek_wrapped), c.kek_id)
        for c in session.execute(select(Customer)).scalars()
        if c.dek_wrapped is not None
    ]


def _vault(*args: str, env: dict) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["keys", *args], env=env)
    return r.exit_code, r.output


def test_retire_after_rotate_and_rewrap_shreds_an_older_copy(env, runtime, session):
    customers = [create_customer(session, runtime, city=f"Ort{i}") for i in range(3)]
    session.commit()
    old_copy = _rows(session)  # a copy of the database from the first epoch
    first = runtime.envelope.primary_kek_id

    code, out = _vault("retire", first, env=env)
    assert code == 1 and "primary" in out
    assert _vault("rotate", env=env)[0] == 0
    code, out = _vault("retire", first, env=env)
    assert code == 1 and "3 data keys are still wrapped" in out
    assert _vault("rewrap", env=env)[0] == 0
    code, out = _vault("retire", first, env=env)
    assert code == 0, out
    code, out = _vault("retire", "k99", env=env)
    assert code == 1 and "no KEK" in out

    fresh = Runtime.build(runtime.settings, engine=runtime.engine)
    assert fresh.keys.kek_ids == [fresh.envelope.primary_kek_id] != [first]
    for cid, wrapped, kek_id in old_copy:
        assert kek_id == first
        with pytest.raises(DecryptionError):
            fresh.envelope.unwrap(cid, wrapped, kek_id)
    session.rollback()  # a fresh snapshot (SQLite readers keep theirs)
    for c in customers:  # the live database still reads
        row = session.get(Customer, c.id)
        values = service.decrypt_values(session=session, envelope=fresh.envelope, customer=row)
        assert values["city"].startswith("Ort")


def test_webhook_secrets_follow_the_epochs_and_hold_back_a_retire(env, runtime, session):
    webhook, secret = webhooks.create_webhook(
        session=session,
        envelope=runtime.envelope,
        settings=runtime.settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.1"}),
        url="http://127.0.0.1:9/vault-hook",
        events=["consent.granted"],
        by=Caller("cli"),
        subscriber=None,
    )
    session.commit()
    first = runtime.envelope.primary_kek_id
    assert _vault("rotate", env=env)[0] == 0
    code, out = _vault("retire", first, env=env)
    assert code == 1 and "1 webhook secrets are still sealed" in out
    code, out = _vault("rewrap", env=env)
    assert code == 0 and "1 webhook secrets" in out
    assert _vault("retire", first, env=env)[0] == 0
    fresh = Runtime.build(runtime.settings, engine=runtime.engine)
    with Session(runtime.engine) as s:  # what the database holds now
        row = s.get(Webhook, webhook.id)
    assert secrets.sealing_kek(row.secret_ciphertext) == fresh.envelope.primary_kek_id != first
    assert secrets.decrypt_secret(fresh.envelope, webhook.id, row.secret_ciphertext) == secret


def test_the_worker_rotates_rewraps_and_retires_by_the_clock(runtime, session):
    customers = [create_customer(session, runtime) for _ in range(4)]
    session.commit()
    old_copy = _rows(session)
    settings = runtime.settings.model_copy(update={"key_epoch_days": 30})
    rt = Runtime.build(settings, engine=runtime.engine)
    first = rt.envelope.primary_kek_id
    start = utcnow()
    now = [start]
    with Worker(rt, clock=lambda: now[0]) as worker:
        now[0] = start + timedelta(days=29)
        assert worker.run_key_epoch() == 0 and rt.envelope.primary_kek_id == first
        now[0] = start + timedelta(days=30, seconds=1)
        assert worker.run_key_epoch() == 1  # rotated
        second = rt.envelope.primary_kek_id
        assert second != first and set(rt.envelope.keys.kek_ids) == {first, second}
        now[0] += EPOCH_GRACE / 2
        assert worker.run_key_epoch() == 0  # servers may not have seen the new KEK yet
        now[0] += EPOCH_GRACE
        assert worker.run_key_epoch() == len(customers) + 1  # rewrapped all, retired one
        assert rt.envelope.keys.kek_ids == [second]
        assert worker.run_key_epoch() == 0
    assert {kid for _, _, kid in _rows(session)} == {second}
    fresh = Runtime.build(settings, engine=runtime.engine)
    for cid, wrapped, kek_id in old_copy:
        with pytest.raises(DecryptionError):
            fresh.envelope.unwrap(cid, wrapped, kek_id)
    session.rollback()  # a fresh snapshot (SQLite readers keep theirs)
    for c in customers:
        row = session.get(Customer, c.id)
        assert service.decrypt_values(session=session, envelope=fresh.envelope, customer=row)


def test_an_old_key_file_without_creation_times_starts_its_epoch_at_the_first_check(
    runtime, session
):
    if runtime.settings.key_provider != "file":
        pytest.skip("key files only")
    path = runtime.settings.data_dir / KEY_FILE_NAME
    doc = json.loads(path.read_text())
    del doc["created"]
    path.write_text(json.dumps(doc))
    settings = runtime.settings.model_copy(update={"key_epoch_days": 1})
    rt = Runtime.build(settings, engine=runtime.engine)
    assert rt.keys.created == {}
    later = utcnow() + timedelta(days=400)
    with Worker(rt, clock=lambda: later) as worker:
        assert worker.run_key_epoch() == 0  # age unknown: counted from now, not rotated
    assert json.loads(path.read_text())["created"] == {"k1": later.isoformat()}
