import base64
import secrets
import stat

import pytest

from vault.config import Settings
from vault.crypto.keys import KEY_FILE_NAME, KeyConfigError, LocalKeyFile, load_key_material


def test_key_file_created_with_mode_0600_and_reused(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", _env_file=None)
    first = load_key_material(settings)
    path = tmp_path / "d" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_key_material(settings)
    assert first.keks == second.keks and first.index_key == second.index_key


def test_rotate_adds_primary_and_keeps_old(tmp_path):
    settings = Settings(data_dir=tmp_path, _env_file=None)
    before = load_key_material(settings)
    new_id = LocalKeyFile(tmp_path / KEY_FILE_NAME).rotate()
    after = load_key_material(settings)
    assert after.primary_kek_id == new_id != before.primary_kek_id
    assert after.keks[before.primary_kek_id] == before.keks[before.primary_kek_id]
    assert stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode) == 0o600


def _b64() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def test_keys_from_environment(tmp_path, monkeypatch):
    k1, k2 = _b64(), _b64()
    monkeypatch.setenv("VAULT_MASTER_KEYS", f"k2:{k2},k1:{k1}")
    monkeypatch.setenv("VAULT_INDEX_KEY", _b64())
    monkeypatch.setenv("VAULT_SIGNING_SEED", _b64())
    keys = load_key_material(Settings(data_dir=tmp_path, _env_file=None))
    assert keys.primary_kek_id == "k2"
    assert keys.keks["k1"] == base64.b64decode(k1)
    assert not (tmp_path / KEY_FILE_NAME).exists()


@pytest.mark.parametrize(
    "value", ["k1", "k1:notbase64!", f"k1:{base64.b64encode(b'short').decode()}"]
)
def test_bad_environment_keys_are_refused(tmp_path, monkeypatch, value):
    monkeypatch.setenv("VAULT_MASTER_KEYS", value)
    monkeypatch.setenv("VAULT_INDEX_KEY", _b64())
    monkeypatch.setenv("VAULT_SIGNING_SEED", _b64())
    with pytest.raises(KeyConfigError):
        load_key_material(Settings(data_dir=tmp_path, _env_file=None))


def test_production_requires_external_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULT_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="VAULT_MASTER_KEYS"):
        Settings(data_dir=tmp_path, _env_file=None)


def test_pkcs11_provider_needs_module_label_and_pin(tmp_path):
    with pytest.raises(ValueError, match="VAULT_PKCS11_MODULE"):
        Settings(data_dir=tmp_path, key_provider="pkcs11", _env_file=None)
    s = Settings(
        data_dir=tmp_path,
        environment="production",
        key_provider="pkcs11",
        pkcs11_module=tmp_path / "lib.so",
        pkcs11_token_label="t",
        pkcs11_pin="p",
        smtp_url="smtps://mail.example.com",
        mail_from="service@example.com",
        _env_file=None,
    )
    assert s.key_provider == "pkcs11" and "p" not in repr(s.pkcs11_pin)


def test_key_file_records_creation_times_and_retire_deletes_a_kek(tmp_path):
    settings = Settings(data_dir=tmp_path, _env_file=None)
    first = load_key_material(settings)
    keyfile = LocalKeyFile(tmp_path / KEY_FILE_NAME)
    new_id = keyfile.rotate()
    keys = load_key_material(settings)
    assert set(keys.created) == {first.primary_kek_id, new_id}
    with pytest.raises(KeyConfigError):
        keyfile.retire(new_id)  # the primary
    keyfile.retire(first.primary_kek_id)
    after = load_key_material(settings)
    assert after.kek_ids == [new_id] and first.keks["k1"] not in after.keks.values()
    assert base64.b64encode(first.keks["k1"]) not in (tmp_path / KEY_FILE_NAME).read_bytes()
