"""vault audit seal | verify [--json] | purge."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlmodel import Session
from typer.testing import CliRunner

from tests.audit.helpers import seal, tamper, verify, write
from vault.audit.models import AuditEvent
from vault.cli import app
from vault.db import utcnow


@pytest.fixture
def env(settings, runtime):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }


def _run(env, *args):
    return CliRunner().invoke(app, ["audit", *args], env=env)


def test_seal_then_verify_json(env, runtime):
    write(runtime, 12)
    r = _run(env, "seal")
    assert r.exit_code == 0 and "sealed 12 events; head seq 12; checkpoint 12" in r.output
    r = _run(env, "verify", "--json")
    assert r.exit_code == 0, r.output
    # verify records its own audit.read event and chains it first
    assert json.loads(r.output) == {"ok": True, "checked": 13, "first_invalid_seq": None}
    r = _run(env, "verify")
    assert r.exit_code == 0 and r.output.startswith("ok: 14 events verified")


def test_verify_exits_1_and_names_the_seq(env, runtime):
    write(runtime, 5)
    seal(runtime)
    with tamper(runtime) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq = 2"))
    r = _run(env, "verify", "--json", "--no-seal")
    assert r.exit_code == 1
    assert json.loads(r.output) == {"ok": False, "checked": 1, "first_invalid_seq": 2}
    r = _run(env, "verify")
    assert r.exit_code == 1 and "TAMPERED: first invalid seq 2" in r.output


def test_verify_no_seal_writes_nothing(env, runtime):
    write(runtime, 3)
    r = _run(env, "verify", "--json", "--no-seal")
    assert r.exit_code == 0 and json.loads(r.output)["checked"] == 0
    with Session(runtime.engine) as s:
        assert s.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 3


def test_purge_command(env, runtime):
    write(runtime, 6, now=utcnow() - timedelta(days=50))
    seal(runtime)
    write(runtime, 2)
    r = _run(env, "purge", "--retention-days", "30")
    assert r.exit_code == 0, r.output
    assert "purged 6 events up to seq 6" in r.output
    assert verify(runtime).ok
    r = _run(env, "purge", "--retention-days", "30")
    assert r.exit_code == 0 and "nothing to purge" in r.output
    assert verify(runtime).ok
