"""The data directory is 0700 and every file in it 0600; a key file or database that others
may read is a warning at start, and a refusal in production."""

from __future__ import annotations

import base64
import logging
import os
import stat

import pytest
from typer.testing import CliRunner

from vault.cli import app
from vault.config import Settings
from vault.datadir import UnsafePermissions
from vault.runtime import Runtime


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_vault_demo_in_a_fresh_directory_makes_it_0700_with_0600_files(tmp_path):
    data = tmp_path / "fresh" / "vault-data"
    env = {"VAULT_DATA_DIR": str(data), "VAULT_AUDIT_SEAL_INTERVAL": "0"}
    result = CliRunner().invoke(app, ["demo", "--customers", "4"], env=env)
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in data.iterdir())
    assert {"keys.json", "vault.db"} <= set(files)
    assert _mode(data) == 0o700
    assert {p.name: _mode(p) for p in data.iterdir()} == dict.fromkeys(files, 0o600)


def _settings(data, **extra) -> Settings:
    return Settings(data_dir=data, audit_seal_interval=0, _env_file=None, **extra)


def test_a_key_file_others_may_read_is_a_warning_at_start(tmp_path, caplog):
    data = tmp_path / "data"
    Runtime.build(_settings(data)).engine.dispose()
    os.chmod(data / "keys.json", 0o644)
    with caplog.at_level(logging.WARNING, logger="vault"):
        Runtime.build(_settings(data)).engine.dispose()
    assert "keys.json (0o644)" in caplog.text and "readable by group or others" in caplog.text


def _production_env(data) -> dict[str, str]:
    key = base64.b64encode(b"k" * 32).decode()
    return {
        "VAULT_ENVIRONMENT": "production",
        "VAULT_DATA_DIR": str(data),
        "VAULT_MASTER_KEYS": f"p1:{key}",
        "VAULT_INDEX_KEY": key,
        "VAULT_SIGNING_SEED": key,
        "VAULT_AUDIT_SEAL_INTERVAL": "0",
        "VAULT_SMTP_URL": "smtps://mail.example.com",  # production needs one (vault.mail)
        "VAULT_MAIL_FROM": "service@example.com",
    }


def test_production_refuses_to_start_with_a_database_others_may_read(tmp_path, monkeypatch):
    data = tmp_path / "data"
    env = _production_env(data)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    Runtime.build(Settings(_env_file=None)).engine.dispose()  # 0600: starts
    os.chmod(data / "vault.db", 0o644)
    with pytest.raises(UnsafePermissions, match=r"vault\.db \(0o644\)"):
        Runtime.build(Settings(_env_file=None))
    served = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: served.append(a))
    result = CliRunner().invoke(app, ["serve"], env=env)
    assert result.exit_code == 1 and "refusing to start" in result.output
    assert served == []
