"""vault staff create | list | disable | reset: passwords from stdin, TOTP URI shown once."""

from __future__ import annotations

import json

import pyotp
import pytest
from sqlalchemy import select
from sqlmodel import Session
from typer.testing import CliRunner

from tests.staff.helpers import PASSWORD, Staff, secret_of, sign_in
from vault.audit.models import AuditEvent
from vault.cli import app
from vault.db import reader
from vault.errors import DecryptionError
from vault.staff import totp
from vault.staff.models import StaffAccount, StaffSession


@pytest.fixture
def env(settings, runtime):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }


def _run(env, *args, password: str = PASSWORD):
    return CliRunner().invoke(app, ["staff", *args], env=env, input=password + "\n")


def _create(env, name="anna.k", role="auditor", *extra) -> dict:
    r = _run(env, "create", "--name", name, "--role", role, *extra, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_create_prints_the_totp_uri_once_and_stores_only_hash_and_sealed_secret(env, runtime):
    made = _create(env, "Anna.K", "store", "--store", "Köln-Ehrenfeld")
    assert made["name"] == "anna.k" and made["role"] == "store"
    assert made["store"] == "Köln-Ehrenfeld" and made["status"] == "active"
    assert made["id"].startswith("st") and made["id"].isalpha()
    uri = made["totp_uri"]
    assert uri.startswith("otpauth://totp/") and "issuer=Consent%20Vault" in uri
    secret = secret_of(uri)
    with Session(reader(runtime.engine)) as s:
        row = s.get(StaffAccount, made["id"])
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
        assert secret.encode() not in row.totp_sealed
        assert totp.open_sealed(runtime.envelope, row.id, row.totp_sealed) == secret
        # sealed for this account only: moved to another id it does not open
        with pytest.raises(DecryptionError):
            totp.open_sealed(runtime.envelope, "stother", row.totp_sealed)
        event = s.execute(
            select(AuditEvent).where(AuditEvent.action == "staff.created")
        ).scalar_one()
        assert event.actor_type == "cli" and made["id"] in event.details
        assert "anna" not in event.details  # the name stays out of the audit log
    listed = _run(env, "list")
    assert listed.exit_code == 0
    assert "otpauth" not in listed.stdout and "argon2" not in listed.stdout
    assert [a["name"] for a in json.loads(listed.stdout)] == ["anna.k"]


@pytest.mark.parametrize(
    "args,password",
    [
        (["--name", "x", "--role", "auditor"], PASSWORD),  # name too short
        (["--name", "bob", "--role", "admin"], PASSWORD),  # no such role
        (["--name", "bob", "--role", "store"], PASSWORD),  # a store account needs --store
        (["--name", "bob", "--role", "auditor"], "short"),  # password too short
        (["--name", "bob smith", "--role", "auditor"], PASSWORD),  # space in the name
    ],
)
def test_create_refuses_bad_input(env, args, password):
    r = _run(env, "create", *args, password=password)
    assert r.exit_code == 1
    assert "invalid_staff_account" in r.output
    assert password not in r.output


def test_create_refuses_a_taken_name(env):
    _create(env, "bob")
    r = _run(env, "create", "--name", "BOB", "--role", "auditor")
    assert r.exit_code == 1 and "staff_name_taken" in r.output


def test_disable_ends_sessions_and_sign_in(env, runtime, client):
    made = _create(env, "carla")
    staff = Staff(made["id"], "carla", "auditor", secret_of(made["totp_uri"]))
    assert sign_in(client, staff).status_code == 303
    r = _run(env, "disable", "carla")
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "disabled"
    with Session(reader(runtime.engine)) as s:
        assert s.execute(select(StaffSession).where(StaffSession.staff_id == staff.id)).all() == []
    assert client.get("/staff/audit", follow_redirects=False).status_code == 303
    assert sign_in(client, staff, code=staff.code(1)).status_code == 401
    assert _run(env, "disable", "nobody").exit_code == 1


def test_reset_replaces_password_and_totp_secret(env, runtime, client):
    made = _create(env, "dora")
    old = Staff(made["id"], "dora", "auditor", secret_of(made["totp_uri"]))
    assert sign_in(client, old).status_code == 303
    new_password = "a brand new passphrase"
    r = _run(env, "reset", "dora", "--json", password=new_password)
    assert r.exit_code == 0, r.output
    uri = json.loads(r.stdout)["totp_uri"]
    new = Staff(old.id, "dora", "auditor", secret_of(uri), new_password)
    assert new.secret != old.secret
    # the old session ended; old password and old secret no longer work
    assert client.get("/staff/audit", follow_redirects=False).status_code == 303
    assert sign_in(client, old, code=old.code(1)).status_code == 401
    assert sign_in(client, new, password=PASSWORD).status_code == 401
    assert sign_in(client, new).status_code == 303
    with Session(reader(runtime.engine)) as s:
        actions = s.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars().all()
    assert "staff.reset" in actions


def test_reset_code_is_a_fresh_secret_from_a_good_source(env):
    made = _create(env, "emil")
    secret = secret_of(made["totp_uri"])
    assert len(secret) == 32
    assert pyotp.TOTP(secret).now().isdigit()


def test_totp_secrets_follow_the_key_epochs_and_hold_back_a_retire(env, runtime, client):
    made = _create(env, "fritz")
    staff = Staff(made["id"], "fritz", "auditor", secret_of(made["totp_uri"]))
    old = runtime.envelope.primary_kek_id
    r = CliRunner().invoke(app, ["keys", "rotate"], env=env)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["keys", "retire", old], env=env)
    assert r.exit_code == 1 and "staff TOTP secrets are still sealed" in r.output
    r = CliRunner().invoke(app, ["keys", "rewrap"], env=env)
    assert r.exit_code == 0 and "resealed 1 staff TOTP secrets" in r.output
    with Session(reader(runtime.engine)) as s:
        sealed = s.get(StaffAccount, staff.id).totp_sealed
    assert totp.sealing_kek(sealed) != old
    r = CliRunner().invoke(app, ["keys", "retire", old], env=env)
    assert r.exit_code == 0, r.output
    runtime.envelope.reload_now()
    assert sign_in(client, staff).status_code == 303  # the same authenticator still works
