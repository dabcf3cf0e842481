"""vault keys split / recover: SLIP-39 shares of the key file (issue 15, item 6)."""

from __future__ import annotations

import base64
import json

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from tests.factories import create_customer
from vault.cli import app as cli
from vault.crypto.keys import KEY_FILE_NAME
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


def _split(env, n=5, k=3) -> list[str]:
    r = CliRunner().invoke(
        cli, ["keys", "split", "--shares", str(n), "--threshold", str(k)], env=env
    )
    assert r.exit_code == 0, r.output
    shares = r.stdout.strip().splitlines()
    assert len(shares) == n and len(set(shares)) == n
    return shares


def test_split_then_recover_from_three_of_five_unwraps_existing_keys(
    env, settings, runtime, session
):
    customers = [create_customer(session, runtime, first_name=f"Name{i}") for i in range(3)]
    assert CliRunner().invoke(cli, ["keys", "rotate"], env=env).exit_code == 0  # 2 KEKs
    keyfile = settings.data_dir / KEY_FILE_NAME
    before = json.loads(keyfile.read_text())
    shares = _split(env)
    # SLIP-39 words only: no base64 of any key in a share
    for secret in [*before["keks"].values(), before["index_key"], before["signing_seed"]]:
        assert all(secret not in s for s in shares)

    keyfile.unlink()
    r = CliRunner().invoke(
        cli, ["keys", "recover"], input="\n".join([shares[4], shares[0], shares[2]]) + "\n", env=env
    )
    assert r.exit_code == 0, r.output
    after = json.loads(keyfile.read_text())
    assert after["primary"] == before["primary"] and after["keks"] == before["keks"]
    assert (after["index_key"], after["signing_seed"]) == (
        before["index_key"],
        before["signing_seed"],
    )
    assert keyfile.stat().st_mode & 0o777 == 0o600

    rebuilt = Runtime.build(settings)
    try:
        with Session(rebuilt.engine) as s:
            for c in customers:
                row = s.get(Customer, c.id)
                values = service.decrypt_values(session=s, envelope=rebuilt.envelope, customer=row)
                assert values["first_name"] == f"Name{customers.index(c)}"
    finally:
        rebuilt.engine.dispose()


def test_too_few_shares_fail_clearly(env, settings, runtime):
    shares = _split(env)
    keyfile = settings.data_dir / KEY_FILE_NAME
    keyfile.unlink()
    r = CliRunner().invoke(cli, ["keys", "recover"], input="\n".join(shares[:2]) + "\n", env=env)
    assert r.exit_code == 1
    assert "cannot recover the key file from 2 share(s)" in r.output
    assert not keyfile.exists()
    # a mistyped word fails the checksum
    words = shares[0].split()
    words[5] = "academic" if words[5] != "academic" else "acid"
    bad = "\n".join([" ".join(words), shares[1], shares[2]])
    assert CliRunner().invoke(cli, ["keys", "recover"], input=bad, env=env).exit_code == 1


def test_recover_keeps_an_existing_key_file_without_force(env, settings, runtime):
    shares = _split(env)
    keyfile = settings.data_dir / KEY_FILE_NAME
    original = keyfile.read_bytes()
    r = CliRunner().invoke(cli, ["keys", "recover"], input="\n".join(shares[:3]), env=env)
    assert r.exit_code == 1 and "--force" in r.output
    assert keyfile.read_bytes() == original
    r = CliRunner().invoke(
        cli, ["keys", "recover", "--force"], input="\n".join(shares[:3]), env=env
    )
    assert r.exit_code == 0, r.output


def test_split_refuses_keys_from_the_environment(env, runtime):
    keys = runtime.keys
    env = {
        **env,
        "VAULT_MASTER_KEYS": ",".join(
            f"{k}:{base64.b64encode(v).decode()}" for k, v in keys.keks.items()
        ),
        "VAULT_INDEX_KEY": base64.b64encode(keys.index_key).decode(),
        "VAULT_SIGNING_SEED": base64.b64encode(keys.signing_seed).decode(),
    }
    r = CliRunner().invoke(cli, ["keys", "split", "--shares", "3", "--threshold", "2"], env=env)
    assert r.exit_code == 1 and "VAULT_MASTER_KEYS" in r.output
    r = CliRunner().invoke(cli, ["keys", "recover"], input="", env=env)
    assert r.exit_code == 1 and "VAULT_MASTER_KEYS" in r.output


def test_threshold_above_shares_is_refused(env, runtime):
    r = CliRunner().invoke(cli, ["keys", "split", "--shares", "2", "--threshold", "3"], env=env)
    assert r.exit_code == 2
