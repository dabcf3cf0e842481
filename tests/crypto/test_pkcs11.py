"""The PKCS#11 provider against SoftHSM2: KEKs made on the token and never extractable,
erasure through the API, and no KEK bytes anywhere outside the token."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import Session

from tests.dsr.helpers import customer_with_data, dsr, read, reader
from vault.config import Settings
from vault.crypto.envelope import _dek_aad
from vault.crypto.keys import KEY_FILE_NAME
from vault.customers.models import Customer
from vault.runtime import Runtime


@pytest.fixture
def settings(db_url, data_dir, token) -> Settings:  # the suite's fixtures, on the token
    return Settings(
        data_dir=data_dir,
        database_url=db_url,
        public_url="http://testserver",
        audit_seal_interval=0,
        key_provider="pkcs11",
        pkcs11_module=token.module,
        pkcs11_token_label=token.label,
        pkcs11_pin=token.pin,
        _env_file=None,
    )


def test_keks_are_made_on_the_token_sensitive_and_not_extractable(runtime):
    provider = runtime.envelope.provider
    assert provider.name == "pkcs11" and runtime.keys.keks == {}
    for kid in provider.kek_ids():
        assert provider.attributes(kid) == {
            "sensitive": True,
            "extractable": False,
            "never_extractable": True,
        }


def _candidates(raw: bytes):
    """Every 32-byte window of ``raw`` (and of what base64 inside it decodes to)."""
    for i in range(len(raw) - 31):
        yield raw[i : i + 32]
    for word in raw.replace(b'"', b" ").replace(b",", b" ").replace(b":", b" ").split():
        try:
            decoded = base64.b64decode(word, validate=True)
        except ValueError:
            continue
        for i in range(len(decoded) - 31):
            yield decoded[i : i + 32]


def _opens(key: bytes, customer: Customer) -> bool:
    blob = bytes(customer.dek_wrapped)
    try:
        AESGCM(key).decrypt(blob[1:13], blob[13:], _dek_aad(customer.id, customer.kek_id))
    except InvalidTag:
        return False
    return True


def _kek_found(data_dir: Path, customer: Customer) -> list[str]:
    found = []
    sources = {str(p): p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    sources.update({f"env:{k}": v.encode() for k, v in os.environ.items()})
    for where, raw in sources.items():
        if any(_opens(c, customer) for c in _candidates(raw)):
            found.append(where)
    return found


def test_no_kek_bytes_in_the_data_directory_or_the_environment(runtime, session, backend):
    customer = customer_with_data(session, runtime)
    session.expire_all()
    row = session.get(Customer, customer.id)
    assert not (runtime.settings.data_dir / KEY_FILE_NAME).exists()  # no key file at all
    runtime.engine.dispose()
    assert _kek_found(runtime.settings.data_dir, row) == []


def test_the_kek_scan_finds_the_key_file(tmp_path, session, runtime, backend):
    """The scan above can fail: with the file provider it finds the KEK in keys.json."""
    file_settings = runtime.settings.model_copy(
        update={"key_provider": "file", "data_dir": tmp_path / "file-keys"}
    )
    file_rt = Runtime.build(file_settings, engine=runtime.engine)
    customer = customer_with_data(session, file_rt)
    session.expire_all()
    row = session.get(Customer, customer.id)
    assert _kek_found(tmp_path / "file-keys", row) == [str(tmp_path / "file-keys" / KEY_FILE_NAME)]


def test_erasure_through_the_api_with_the_token(client, session, runtime):
    victim = customer_with_data(session, runtime)
    staff = dsr(session, runtime)
    app = reader(session, runtime, "order_fulfilment")
    assert read(client, app, victim.id, "order_fulfilment").status_code == 200
    session.close()

    assert client.delete(f"/v1/customers/{victim.id}", headers=staff).status_code == 204
    r = read(client, app, victim.id, "order_fulfilment")
    assert r.status_code == 410 and r.json()["error"] == "customer_erased"
    with Session(runtime.engine) as s:
        row = s.get(Customer, victim.id)
        assert row.dek_wrapped is None and row.kek_id is None
