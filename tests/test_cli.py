import json

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from tests.factories import create_customer
from vault.auth.models import Client
from vault.cli import app
from vault.customers import service
from vault.customers.models import Customer
from vault.runtime import Runtime


@pytest.fixture
def env(settings):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_PUBLIC_URL": settings.public_url,
    }


def test_clients_create_json(env, runtime):
    result = CliRunner().invoke(
        app,
        [
            "clients",
            "create",
            "--name",
            "Newsletter",
            "--scopes",
            "data:read",
            "--purposes",
            "newsletter",
            "--json",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    with Session(runtime.engine) as s:
        row = s.get(Client, out["client_id"])
        assert row is not None and row.purposes == "newsletter"
        assert out["client_secret"] not in row.secret_hash


def test_clients_create_rejects_unknown_scope(env, runtime):
    result = CliRunner().invoke(
        app, ["clients", "create", "--name", "x", "--scopes", "superuser"], env=env
    )
    assert result.exit_code == 1 and "superuser" in result.output


def test_keys_rotate_then_rewrap(env, runtime, session):
    customers = [create_customer(session, runtime, city=f"Ort{i}") for i in range(5)]
    old = runtime.envelope.primary_kek_id
    r = CliRunner().invoke(app, ["keys", "rotate"], env=env)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["keys", "rewrap", "--batch-size", "2"], env=env)
    assert r.exit_code == 0 and "re-wrapped 5 data keys" in r.output
    fresh = Runtime.build(runtime.settings, engine=runtime.engine)
    assert fresh.envelope.primary_kek_id != old
    session.expire_all()
    assert set(session.execute(select(Customer.kek_id)).scalars()) == {
        fresh.envelope.primary_kek_id
    }
    for c in customers:
        row = session.get(Customer, c.id)
        values = service.decrypt_values(session=session, envelope=fresh.envelope, customer=row)
        assert values["city"].startswith("Ort")
    r = CliRunner().invoke(app, ["keys", "rewrap"], env=env)
    assert "re-wrapped 0 data keys" in r.output  # resumable: nothing left to do


def test_openapi_command_writes_file(tmp_path):
    out = tmp_path / "o.json"
    r = CliRunner().invoke(app, ["openapi", "--output", str(out)])
    assert r.exit_code == 0 and json.loads(out.read_text())["info"]["title"] == "Consent Vault"


def _vault(args, env_extra, tmp_path, stdin=None):
    import os
    import subprocess
    import sys

    from vault import PROJECT_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env.update({"VAULT_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(PROJECT_ROOT)})
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "vault.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("environment", "named"),
    [("prod", "VAULT_ENVIRONMENT"), ("production", "VAULT_MASTER_KEYS")],
)
def test_a_configuration_error_is_one_line_not_a_traceback(tmp_path, environment, named):
    """``VAULT_ENVIRONMENT=prod`` once started a vault without production's checks."""
    r = _vault(["policies", "check"], {"VAULT_ENVIRONMENT": environment}, tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: " + named), r.stderr
    assert "Traceback" not in r.stderr


def test_a_command_on_a_fresh_embedded_vault_migrates_first(tmp_path):
    """``vault staff create`` (or ``clients create``) before any ``vault serve`` once failed
    with a traceback: no such table. The embedded default migrates, as ``vault serve`` does."""
    r = _vault(
        ["staff", "create", "--name", "erika", "--role", "auditor", "--json"],
        {},
        tmp_path,
        stdin="a long staff password\n",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totp_uri"].startswith("otpauth://totp/")
    listed = _vault(["staff", "list"], {}, tmp_path)
    assert [a["name"] for a in json.loads(listed.stdout)] == ["erika"]


def test_an_old_schema_elsewhere_is_refused_not_migrated(tmp_path):
    """Another database than the embedded default is never migrated behind the operator's back:
    an empty or older schema is one clear line and exit status 2."""
    from sqlalchemy import create_engine

    from vault.db import SchemaNotCurrent, ensure_schema, head_revision, schema_revision

    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert schema_revision(engine) is None
    with pytest.raises(SchemaNotCurrent, match="vault db upgrade"):
        ensure_schema(engine, str(engine.url), migrate=False)
    ensure_schema(engine, str(engine.url), migrate=True)
    assert schema_revision(engine) == head_revision()
    engine.dispose()


def test_an_unmigrated_postgresql_gets_one_line_not_a_traceback(tmp_path):
    import uuid

    from sqlalchemy.engine import make_url

    from tests.conftest import PG_URL, _pg_admin
    from vault.db import head_revision

    if not PG_URL:
        pytest.skip("PostgreSQL only (CI sets VAULT_TEST_POSTGRES_URL)")
    name = f"vault_empty_{uuid.uuid4().hex[:10]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        r = _vault(["clients", "list"], {"VAULT_DATABASE_URL": url}, tmp_path)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [
            f"database error: the database is at schema revision none (empty), this vault "
            f"needs {head_revision()}: run 'vault db upgrade' first"
        ]
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
