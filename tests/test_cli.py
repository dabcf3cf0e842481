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


@pytest.mark.parametrize(
    ("environment", "named"),
    [("prod", "VAULT_ENVIRONMENT"), ("production", "VAULT_MASTER_KEYS")],
)
def test_a_configuration_error_is_one_line_not_a_traceback(tmp_path, environment, named):
    """``VAULT_ENVIRONMENT=prod`` once started a vault without production's checks."""
    import os
    import subprocess
    import sys

    from vault import PROJECT_ROOT

    env = {**os.environ, "VAULT_ENVIRONMENT": environment, "VAULT_DATA_DIR": str(tmp_path)}
    env.pop("VAULT_MASTER_KEYS", None)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    r = subprocess.run(
        [sys.executable, "-m", "vault.cli", "policies", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: " + named), r.stderr
    assert "Traceback" not in r.stderr
