"""Webhook secrets at rest: encrypted, bound to their subscription."""

from __future__ import annotations

import uuid

import pytest

from vault.errors import DecryptionError
from vault.events.secrets import decrypt_secret, encrypt_secret, generate_secret


def test_secret_roundtrip_and_binding(runtime):
    secret = generate_secret()
    assert secret.startswith("whsec_")
    a, b = uuid.uuid4(), uuid.uuid4()
    blob = encrypt_secret(runtime.envelope, a, secret)
    assert secret.encode() not in blob
    assert encrypt_secret(runtime.envelope, a, secret) != blob  # fresh nonce
    assert decrypt_secret(runtime.envelope, a, blob) == secret
    with pytest.raises(DecryptionError):
        decrypt_secret(runtime.envelope, b, blob)  # moved to another subscription
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        decrypt_secret(runtime.envelope, a, tampered)
