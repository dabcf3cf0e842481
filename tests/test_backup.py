"""vault backup / vault restore with the erasure journal (issue 15, item 5): a restored backup
never brings an erased customer back, and keeps no byte of it."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlmodel import Session
from typer.testing import CliRunner

from tests.conftest import PG_URL, _pg_admin
from tests.dsr.helpers import customer_with_data, dsr
from vault.app import create_app
from vault.cli import app as cli
from vault.config import Settings
from vault.customers.models import BlindIndex, Customer, CustomerValue
from vault.dsr import erasure
from vault.runtime import Runtime


def _env(settings: Settings) -> dict[str, str]:
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_PUBLIC_URL": settings.public_url,
    }


def _secrets(runtime: Runtime, customer_id) -> list[bytes]:
    """The customer's wrapped key, ciphertexts and blind-index digests, as stored."""
    with Session(runtime.engine) as s:
        c = s.get(Customer, customer_id)
        values = s.execute(
            select(CustomerValue.ciphertext).where(CustomerValue.customer_id == customer_id)
        ).scalars()
        digests = s.execute(
            select(BlindIndex.digest).where(BlindIndex.customer_id == customer_id)
        ).scalars()
        out = [bytes(c.dek_wrapped), *(bytes(v) for v in values), *(bytes(d) for d in digests)]
    assert len(out) >= 6
    return out


def _no_residue(data_dir: Path, secrets: list[bytes]) -> None:
    """No byte of the erased customer in any file of the data directory."""
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        raw = path.read_bytes()
        for secret in secrets:
            assert secret not in raw, f"{path.name} still holds a secret of the erased customer"


@pytest.fixture
def target(backend, tmp_path) -> Iterator[Settings]:
    """An empty vault to restore into: a fresh data directory and an empty database."""
    data_dir = tmp_path / "restored"
    name = None
    if backend == "sqlite":
        url = f"sqlite:///{data_dir / 'vault.db'}"
    else:
        name = f"vault_r_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield Settings(
        data_dir=data_dir,
        database_url=url,
        public_url="http://testserver",
        audit_seal_interval=0,
        _env_file=None,
    )
    if name:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_restore_replays_erasures_made_after_the_backup(
    client, session, runtime, settings, target, backend, tmp_path
):
    staff = dsr(session, runtime)  # its client is in the snapshot
    gone = customer_with_data(session, runtime)
    stays = [
        customer_with_data(
            session, runtime, email=f"k{i}@example.org", phone=f"+49 30 555000{i}", first_name=n
        )
        for i, n in enumerate(("Anna", "Bert"))
    ]
    session.commit()
    secrets = _secrets(runtime, gone.id)

    backup = tmp_path / "backup"
    r = CliRunner().invoke(cli, ["backup", str(backup)], env=_env(settings))
    assert r.exit_code == 0, r.output
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["keys"] == "keys.json" and manifest["alembic_revision"]
    assert manifest["erasure_journal"] == {"lines": 0, "bytes": 0}
    db_file = "vault.db" if backend == "sqlite" else "vault.pgdump"
    assert set(manifest["files"]) == {db_file, "keys.json"}
    assert all((backup / f).stat().st_mode & 0o077 == 0 for f in manifest["files"])

    erased = client.delete(f"/v1/customers/{gone.id}", headers=staff)
    assert erased.status_code == 204
    certificate = erased.headers["Erasure-Certificate"]

    journal = settings.data_dir / erasure.JOURNAL_NAME
    r = CliRunner().invoke(
        cli, ["restore", str(backup), "--journal", str(journal)], env=_env(target)
    )
    assert r.exit_code == 0, r.output
    assert "1 customer(s) erased again" in r.output
    _no_residue(target.data_dir, secrets)  # right after the restore, before anything opens it

    restored = Runtime.build(target)
    try:
        with TestClient(create_app(restored), raise_server_exceptions=False) as c2:
            r = c2.get(f"/v1/customers/{gone.id}/export", headers=staff)
            assert r.status_code == 410 and r.json()["error"] == "customer_erased"
            # the original certificate came back with the replay
            r = c2.get(f"/v1/customers/{gone.id}/erasure-certificate", headers=staff)
            assert r.status_code == 200 and r.json()["certificate"] == certificate
            for customer in stays:  # the others still decrypt
                r = c2.get(f"/v1/customers/{customer.id}/export", headers=staff)
                assert r.status_code == 200, r.text
                values = {a["name"]: a["value"] for a in r.json()["attributes"]}
                assert values["last_name"] == "Mustermann"
        with Session(restored.engine) as s:
            c = s.get(Customer, gone.id)
            assert (c.status, c.dek_wrapped, c.kek_id) == ("erased", None, None)
            left = s.execute(select(CustomerValue).where(CustomerValue.customer_id == gone.id))
            assert left.first() is None
    finally:
        restored.engine.dispose()

    # the journal moved into the new data directory, so a later restore replays it too
    assert [
        e.customer_id for e in erasure.read_journal(target.data_dir / "erasure-journal.ndjson")
    ] == [gone.id]
    _no_residue(target.data_dir, secrets)


def test_restore_refuses_a_non_empty_target_without_force(session, runtime, settings, tmp_path):
    customer_with_data(session, runtime)
    session.commit()
    backup = tmp_path / "backup"
    assert CliRunner().invoke(cli, ["backup", str(backup)], env=_env(settings)).exit_code == 0
    r = CliRunner().invoke(cli, ["restore", str(backup)], env=_env(settings))
    assert r.exit_code == 1 and "--force" in r.output
    # a backup never writes into a directory that holds something
    r = CliRunner().invoke(cli, ["backup", str(backup)], env=_env(settings))
    assert r.exit_code == 1 and "not an empty directory" in r.output


def test_restore_refuses_a_tampered_backup(session, runtime, settings, target, tmp_path):
    backup = tmp_path / "backup"
    assert CliRunner().invoke(cli, ["backup", str(backup)], env=_env(settings)).exit_code == 0
    keys = json.loads((backup / "keys.json").read_text())
    keys["primary"] = "k9"
    (backup / "keys.json").write_text(json.dumps(keys))
    r = CliRunner().invoke(cli, ["restore", str(backup)], env=_env(target))
    assert r.exit_code == 1 and "does not match the manifest" in r.output


def test_keys_only_and_environment_keys(session, runtime, settings, tmp_path):
    backup = tmp_path / "keys-only"
    r = CliRunner().invoke(cli, ["backup", str(backup), "--keys-only"], env=_env(settings))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in backup.iterdir()) == ["keys.json", "manifest.json"]
    assert json.loads((backup / "manifest.json").read_text())["keys_only"] is True

    keys = runtime.keys
    env = {
        **_env(settings),
        "VAULT_MASTER_KEYS": ",".join(
            f"{k}:{base64.b64encode(v).decode()}" for k, v in keys.keks.items()
        ),
        "VAULT_INDEX_KEY": base64.b64encode(keys.index_key).decode(),
        "VAULT_SIGNING_SEED": base64.b64encode(keys.signing_seed).decode(),
    }
    backup = tmp_path / "env-keys"
    r = CliRunner().invoke(cli, ["backup", str(backup), "--keys-only"], env=env)
    assert r.exit_code == 0, r.output
    manifest = json.loads((backup / "manifest.json").read_text())
    assert "VAULT_MASTER_KEYS" in manifest["keys"] and not (backup / "keys.json").exists()


def test_a_torn_last_journal_line_is_skipped(tmp_path: Path):
    path = tmp_path / "erasure-journal.ndjson"
    path.write_bytes(b'{"customer_id": "00000000-0000-0000-0000-00')
    assert list(erasure.read_journal(path)) == []
    path.write_bytes(b"garbage\n{}\n")
    with pytest.raises(ValueError, match="line 1"):
        list(erasure.read_journal(path))


def test_postgres_keys_only_backup_with_the_operators_pg_dump(
    client, session, runtime, settings, target, backend, tmp_path
):
    """The documented procedure: --keys-only + pg_dump, later pg_restore by hand + vault
    restore, which replays the journal on the restored database."""
    if backend != "postgres":
        pytest.skip("the pg_dump procedure is PostgreSQL's")
    staff = dsr(session, runtime)
    gone, stays = (
        customer_with_data(session, runtime),
        customer_with_data(session, runtime, email="s@example.org", phone="+49 30 5550001"),
    )
    session.commit()
    backup = tmp_path / "backup"
    r = CliRunner().invoke(cli, ["backup", str(backup), "--keys-only"], env=_env(settings))
    assert r.exit_code == 0, r.output
    dump = backup / "vault.pgdump"
    subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", _libpq(settings)],
        check=True,
    )
    assert client.delete(f"/v1/customers/{gone.id}", headers=staff).status_code == 204

    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", "-d", _libpq(target), str(dump)],
        check=True,
    )
    journal = settings.data_dir / erasure.JOURNAL_NAME
    r = CliRunner().invoke(
        cli, ["restore", str(backup), "--journal", str(journal)], env=_env(target)
    )
    assert r.exit_code == 0, r.output
    assert "restored by the operator" in r.output and "1 customer(s) erased again" in r.output
    restored = Runtime.build(target)
    try:
        with TestClient(create_app(restored), raise_server_exceptions=False) as c2:
            r = c2.get(f"/v1/customers/{gone.id}/export", headers=staff)
            assert r.status_code == 410
            assert c2.get(f"/v1/customers/{stays.id}/export", headers=staff).status_code == 200
    finally:
        restored.engine.dispose()


def _libpq(settings: Settings) -> str:
    return (
        make_url(settings.resolved_database_url)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
